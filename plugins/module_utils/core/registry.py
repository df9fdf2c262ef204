# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Builds the one PluginManager: registers the connectors a caller passes in (built-ins,
statically imported by the module so AnsiballZ ships them), then, where asked, third-party
connectors from the ``certforge.pki`` entry-point group.

Every connector class is checked when its plugin registers (``core.connectors``): a class that
does not subclass the SDK base class, or leaves an abstract method open, is refused with a
message naming the missing methods.  Each entry point is loaded on its own and each plugin's
hook is called on its own, so a broken third-party package breaks only its own connectors."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib

from ansible_collections.certforge.pki.plugins.module_utils.core import hookspecs
from ansible_collections.certforge.pki.plugins.module_utils.core.connectors import check_connector_class
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, PolicyError

_HOOKS = {'issuer': 'certforge_issuers', 'target': 'certforge_targets', 'notifier': 'certforge_notifiers'}


def closest(name, candidates):
    """The candidate closest to ``name`` (for "did you mean ...?"), or None."""
    found = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return found[0] if found else None


def _entry_points(group):
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return []
    found = []
    seen = set()
    for dist in metadata.distributions():
        for ep in getattr(dist, 'entry_points', ()) or ():
            if ep.group != group or ep.name in seen:
                continue
            seen.add(ep.name)
            dist_name = (getattr(dist, 'metadata', None) or {}).get('Name') or '?'
            found.append((dist_name, ep))
    return found


class Registry:
    """Thin facade over ``pluggy.PluginManager`` with the lookups the core needs."""

    def __init__(self, plugins=(), load_entry_points=False):
        if not hookspecs.HAS_PLUGGY:
            raise ImportError('pluggy')
        self.pm = hookspecs.pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs.CertforgeSpecs)
        #: 'package/entry point: error' of third-party packages that failed to load
        self.entry_point_errors = []
        for plugin in plugins:
            if self.pm.get_name(plugin) is None and not self.pm.is_registered(plugin):
                self.pm.register(plugin)
        if load_entry_points:
            self._load_entry_points()
        self._cache = {}
        #: {kind: {name: message}} of connector classes refused at registration
        self.refused = {'issuer': {}, 'target': {}, 'notifier': {}}
        #: {kind: [message]} of plugins whose hook raised
        self.hook_errors = {'issuer': [], 'target': [], 'notifier': []}

    def _load_entry_points(self):
        for dist_name, ep in _entry_points(hookspecs.ENTRY_POINT_GROUP):
            if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken package must break only its own connectors
                self.entry_point_errors.append('%s (entry point %s): %s: %s'
                                               % (dist_name, ep.name, type(exc).__name__, exc))

    # -- lookups -----------------------------------------------------------------------------

    def _collect(self, kind):
        if kind in self._cache:
            return self._cache[kind]
        hook = getattr(self.pm.hook, _HOOKS[kind])
        merged = {}
        # pluggy lists hookimpls first-registered first: built-ins win a name conflict
        for impl in hook.get_hookimpls():
            try:
                mapping = impl.function()
            except Exception as exc:
                self.hook_errors[kind].append('plugin %s: %s() raised %s: %s'
                                              % (impl.plugin_name, _HOOKS[kind], type(exc).__name__, exc))
                continue
            if mapping is None:
                continue
            if not isinstance(mapping, dict):
                self.hook_errors[kind].append('plugin %s: %s() returned %s, not {name: class}'
                                              % (impl.plugin_name, _HOOKS[kind], type(mapping).__name__))
                continue
            for name, cls in mapping.items():
                if name in merged or name in self.refused[kind]:
                    continue
                problem = check_connector_class(kind, name, cls)
                if problem:
                    self.refused[kind][name] = '%s (plugin %s)' % (problem, impl.plugin_name)
                else:
                    merged[name] = cls
        self._cache[kind] = merged
        return merged

    def issuers(self):
        return self._collect('issuer')

    def targets(self):
        return self._collect('target')

    def notifiers(self):
        return self._collect('notifier')

    def problems(self, kind):
        """Every load problem relevant to ``kind``: broken packages, raising hooks, refused classes."""
        self._collect(kind)
        return (list(self.entry_point_errors) + list(self.hook_errors[kind])
                + sorted(self.refused[kind].values()))

    def connector_class(self, kind, name):
        """The class of connector ``name`` of ``kind``; ConfigError naming the option, with the
        closest name and any load problem, when there is none."""
        available = self._collect(kind)
        if name in available:
            return available[name]
        if name in self.refused[kind]:
            raise ConfigError('the %s connector %r cannot be used: %s' % (kind, name, self.refused[kind][name]),
                              option=kind, fix='fix the connector package (see docs/connectors.md)')
        known = ', '.join(sorted(available)) or '(none registered)'
        near = closest(name, available)
        fix = ('did you mean %s? ' % near if near else '') + 'use one of: %s, or install the package that provides it' % known
        problems = list(self.entry_point_errors) + list(self.hook_errors[kind])
        if problems:
            fix += ' (installed connector packages that failed to load: %s)' % '; '.join(problems)
        raise ConfigError('unknown %s %r' % (kind, name), option=kind, fix=fix)

    def issuer_class(self, name):
        return self.connector_class('issuer', name)

    def target_class(self, name):
        return self.connector_class('target', name)

    def issuer(self, name, options=None):
        return self.issuer_class(name)(options or {})

    def target(self, name, options=None, runner=None):
        return self.target_class(name)(options or {}, runner)

    def check_request(self, request, issuer):
        """Ask policy plugins; raise PolicyError with every reason given."""
        reasons = []
        for answer in self.pm.hook.certforge_check_request(request=request, issuer=issuer):
            if answer:
                reasons.extend(answer if isinstance(answer, (list, tuple)) else [answer])
        if reasons:
            raise PolicyError('request refused by policy: %s' % '; '.join(str(r) for r in reasons),
                              option='subject_alt_names', fix='change the request or the policy')

    def emit(self, event):
        """Send an event to observers; return warnings for observers that failed."""
        warnings = []
        for impl in self.pm.hook.certforge_event.get_hookimpls():
            try:
                impl.function(event=event)
            except Exception as exc:
                warnings.append('event observer %s failed: %s' % (impl.plugin_name, exc))
        return warnings
