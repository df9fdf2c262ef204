# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Builds the one PluginManager: registers the connectors a caller passes in (built-ins,
statically imported by the module so AnsiballZ ships them), then, on the controller only,
third-party connectors from the ``certforge.pki`` entry-point group."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.certforge.pki.plugins.module_utils.core import hookspecs
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, PolicyError


class Registry:
    """Thin facade over ``pluggy.PluginManager`` with the lookups the core needs."""

    def __init__(self, plugins=(), load_entry_points=False):
        if not hookspecs.HAS_PLUGGY:
            raise ImportError('pluggy')
        self.pm = hookspecs.pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs.CertforgeSpecs)
        for plugin in plugins:
            if self.pm.get_name(plugin) is None and not self.pm.is_registered(plugin):
                self.pm.register(plugin)
        self.entry_point_errors = []
        if load_entry_points:
            self._load_entry_points()

    def _load_entry_points(self):
        try:
            self.pm.load_setuptools_entrypoints(hookspecs.ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken third-party package must not break built-ins
            self.entry_point_errors.append('%s: %s' % (type(exc).__name__, exc))

    def _collect(self, results):
        merged = {}
        # pluggy returns results last-registered first; let earlier registrations
        # (built-ins) lose to later ones only when names differ.
        for mapping in reversed(results):
            for key, value in (mapping or {}).items():
                merged.setdefault(key, value)
        return merged

    def issuers(self):
        return self._collect(self.pm.hook.certforge_issuers())

    def targets(self):
        return self._collect(self.pm.hook.certforge_targets())

    def issuer(self, name, options=None):
        available = self.issuers()
        if name not in available:
            known = ', '.join(sorted(available)) or '(none registered)'
            raise ConfigError(
                'unknown issuer %r' % (name,), option='issuer',
                fix='use one of: %s, or install the package that provides it' % known)
        return available[name](options or {})

    def target(self, name, options=None, runner=None):
        available = self.targets()
        if name not in available:
            known = ', '.join(sorted(available)) or '(none registered)'
            raise ConfigError(
                'unknown target %r' % (name,), option='target',
                fix='use one of: %s, or install the package that provides it' % known)
        return available[name](options or {}, runner)

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
