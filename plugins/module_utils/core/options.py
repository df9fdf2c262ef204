# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connector options checked against the argument spec each connector declares.

``issuer_options``, ``target_options`` and a target's per-certificate options go through the
same check a module's own options get: unknown keys are refused naming the closest valid key
("did you mean allowed_domains?"), values are converted to their types, choices and
``required``/``required_if``/``required_one_of``/``mutually_exclusive`` are enforced, defaults
filled in, and the values of ``no_log`` options are collected so the caller can hide them in
results, errors and ``-vvvv`` output.  Errors never repeat a value.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import difflib

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError


def closest(name, candidates):
    """The candidate closest to ``name``, or None."""
    found = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return found[0] if found else None


def option_spec_of(cls, attribute='option_spec'):
    """The argument spec a connector class declares (``option_spec`` by default), a deep copy;
    None when it declares None (it checks its options itself)."""
    spec = getattr(cls, attribute, None)
    if spec is None:
        return None
    if callable(spec):
        spec = spec()
    return copy.deepcopy(dict(spec or {}))


def _strip_prefix(msg, key):
    for prefix in ("argument '%s' " % key, "argument '%s' is " % key):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def check_options(cls, options, option='issuer_options', kind='issuer', no_log_values=None,
                  attribute='option_spec', keep_unset=False):
    """Check ``options`` (a dict) against the spec ``cls`` declares in ``attribute``; return
    them converted, with defaults.  Unset options without a default are left out unless
    ``keep_unset``.  Raises ConfigError naming ``<option>.<key>`` and the fix."""
    name = getattr(cls, 'name', None) or getattr(cls, '__name__', 'this')
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ConfigError('must be a dictionary, not %s' % type(options).__name__, option=option,
                          fix='give the options of the %s %s as a dictionary' % (name, kind))
    spec = option_spec_of(cls, attribute)
    if spec is None:
        return dict(options)
    known = {}
    for key, value in spec.items():
        known[key] = key
        for alias in value.get('aliases') or ():
            known[alias] = key
    listing = ('use %s' % ', '.join(sorted(spec)) if spec
               else 'leave %s empty: the %s %s has no options of its own' % (option, name, kind))
    for key in sorted(options, key=str):
        if key in known:
            continue
        near = closest(key, known)
        if near and spec[known[near]].get('no_log') and no_log_values is not None \
                and isinstance(options[key], str) and options[key]:
            no_log_values.add(options[key])    # a misspelt secret is still a secret
        raise ConfigError('%r is not an option of the %s %s' % (key, name, kind),
                          option='%s.%s' % (option, key),
                          fix=('did you mean %s? ' % near if near else '') + listing)
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    if no_log_values is not None:
        for key, value in options.items():
            if spec[known[key]].get('no_log') and value not in (None, ''):
                no_log_values.add(value if isinstance(value, str) else str(value))
    for key in sorted(options):
        one = ArgumentSpecValidator({known[key]: _no_required(spec[known[key]])}).validate({key: options[key]})
        if one.error_messages:
            msg = _strip_prefix(one.error_messages[0], key)
            entry = spec[known[key]]
            if entry.get('choices') and 'one of' in msg:
                fix = 'use one of %s' % ', '.join(str(c) for c in entry['choices'])
            else:
                fix = ('give a value of type %s (see the options of the %s %s in the module documentation)'
                       % (entry.get('type', 'str'), name, kind))
            raise ConfigError(msg, option='%s.%s' % (option, key), fix=fix)
    kwargs = {}
    for arg in ('required_if', 'required_one_of', 'mutually_exclusive', 'required_together'):
        value = getattr(cls, 'option_%s' % arg, None) if attribute == 'option_spec' else None
        if value:
            kwargs[arg] = [tuple(v) if isinstance(v, list) else v for v in value]
    result = ArgumentSpecValidator(spec, **kwargs).validate(dict(options))
    if result.error_messages:
        raise ConfigError('; '.join(result.error_messages), option=option,
                          fix='see the options of the %s %s in the module documentation' % (name, kind))
    if no_log_values is not None:
        no_log_values.update(getattr(result, '_no_log_values', ()) or ())
    checked = result.validated_parameters
    if not keep_unset:
        checked = dict((k, v) for k, v in checked.items() if v is not None or k in options)
    return checked


def _no_required(entry):
    out = dict(entry)
    out.pop('required', None)
    return out
