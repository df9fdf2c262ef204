# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``files`` target: write a certificate, its chain and/or a fullchain file.

Planning compares bytes, mode and ownership only (no cryptography import), so a run where
nothing changed stays cheap.  When something changes, the certificate is parsed (diff facts,
leaf-first check) and, if ``key_path`` is given, checked against that key BEFORE anything is
written.  Writes go through one ``core.files.Transaction`` shared by all certificates of a
deploy.  The private key is only ever read to compare public keys; it is never written, copied
or returned.

Other targets (nginx, apache, haproxy, ...) extend ``FilesTarget`` and add validate, reload and
verify.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.certforge.pki.plugins.module_utils.core.deployment import (  # noqa: F401 (re-exported)
    TargetEngine,
    as_list,
    certificate_facts,
    check_key_matches,
    count_certificates as _count_certificates,
    split_certificates,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import CertforgeError, ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.core.files import validate_name
from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import (
    check_target_options,
    deploy,
    target_class,
    target_option_spec,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.model import DeployRequest, FileSpec
from ansible_collections.certforge.pki.plugins.module_utils.core.options import check_options
from ansible_collections.certforge.pki.plugins.module_utils.sdk import TargetConnector, hookimpl

#: names other modules and tests import from here (moved to core.deployment)
REEXPORTED = (as_list, certificate_facts, check_key_matches, split_certificates)

#: (path option, label) in the order files are planned and written.
PATH_OPTIONS = (
    ('certificate_path', 'certificate'),
    ('chain_path', 'chain'),
    ('fullchain_path', 'fullchain'),
)

#: Per-certificate options: top-level values are the defaults of each ``certificates`` element.
CERTIFICATE_OPTIONS = ('name', 'certificate', 'chain', 'certificate_path', 'chain_path',
                       'fullchain_path', 'key_path', 'owner', 'group', 'mode')

#: Per-certificate options of targets that check a live endpoint (``verify``).
VERIFY_CERTIFICATE_OPTIONS = CERTIFICATE_OPTIONS + ('verify',)

DEFAULT_MODE = '0644'
DEFAULT_VERIFY_HOST = '127.0.0.1'
DEFAULT_VERIFY_TIMEOUT = 10


# ---------------------------------------------------------------------------------------------
# requests from module parameters
# ---------------------------------------------------------------------------------------------

def _merge_value(top, element):
    if isinstance(top, dict) and isinstance(element, dict):
        merged = dict((k, v) for k, v in top.items() if v is not None)
        merged.update((k, v) for k, v in element.items() if v is not None)
        return merged
    return element if element is not None else top


def requests_from_params(params, keys=CERTIFICATE_OPTIONS, needs_destination=True):
    """Build ``DeployRequest`` objects from module parameters.

    ``certificates`` (batch) elements take their missing per-certificate options from the
    top-level ones; dict options (``verify``) merge key by key.  Without ``certificates`` the
    top-level options describe one certificate.  ``needs_destination=False`` is for targets
    whose files are their own per-certificate options (haproxy's combined file, a keystore)."""
    batch = params.get('certificates')
    if batch is not None:
        if params.get('certificate') is not None:
            raise ConfigError('certificate and certificates are mutually exclusive',
                              option='certificates',
                              fix='put every certificate in the certificates list')
        if not batch:
            raise ConfigError('is empty', option='certificates',
                              fix='give at least one certificate')
        elements = [(index, element or {}) for index, element in enumerate(batch)]
    else:
        elements = [(None, {})]
    requests = []
    names = {}
    for index, element in elements:
        prefix = 'certificates[%s].' % index if index is not None else ''
        merged = dict((key, _merge_value(params.get(key), element.get(key))) for key in keys)
        if not merged.get('certificate'):
            raise ConfigError('no certificate given', option=prefix + 'certificate',
                              fix='give the PEM certificate (its chain may follow it)')
        paths = [merged.get(key) for key in ('certificate_path', 'fullchain_path', 'chain_path')
                 if merged.get(key)]
        if not paths and 'certificate_options' not in keys:   # a target's own options may name it
            raise ConfigError('no destination given', option=prefix + 'certificate_path',
                              fix='set at least one of certificate_path, chain_path, fullchain_path')
        name = merged.get('name')
        if name is None:
            name = (os.path.splitext(os.path.basename(paths[0]))[0] if paths else '') or 'certificate'
        name = validate_name(name, option=prefix + 'name')
        if name in names:
            raise ConfigError('name %r is used by %s too' % (name, names[name]), option=prefix + 'name',
                              fix='give each certificate a distinct name')
        names[name] = prefix + 'name' if prefix else 'name'
        options = dict((key, merged.get(key)) for key in keys
                       if key not in ('name', 'certificate', 'chain', 'key_path'))
        options['option_prefix'] = prefix
        chain = merged.get('chain')
        requests.append(DeployRequest(
            name=name,
            certificate_pem=merged['certificate'],
            chain_pem=[chain] if chain else [],
            key_path=merged.get('key_path'),
            options=options,
        ))
    return requests


def certificate_suboptions():
    """Argument spec of one ``certificates`` element (no defaults: the top-level options are)."""
    return dict(
        name=dict(type='str'),
        certificate=dict(type='str'),
        chain=dict(type='str'),
        certificate_path=dict(type='path'),
        chain_path=dict(type='path'),
        fullchain_path=dict(type='path'),
        key_path=dict(type='path', no_log=False),
        owner=dict(type='str'),
        group=dict(type='str'),
        mode=dict(type='raw'),
    )


def verify_suboptions(with_defaults):
    """Argument spec of ``verify`` (the live check of targets that serve the certificate); the
    defaults apply at the top level only, so an element's unset keys come from there."""
    return dict(
        host=dict(type='str', default=DEFAULT_VERIFY_HOST if with_defaults else None),
        port=dict(type='int'),
        server_name=dict(type='str'),
        timeout=dict(type='float', default=DEFAULT_VERIFY_TIMEOUT if with_defaults else None),
    )


def files_argument_spec(verify=False):
    """Argument spec shared by the deploy modules (kept in step with the doc fragment
    ``certforge.pki.deploy``; with ``verify``, ``certforge.pki.deploy.verify``)."""
    spec = certificate_suboptions()
    spec['mode'] = dict(type='raw', default=DEFAULT_MODE)
    spec.update(
        certificates=dict(type='list', elements='dict', options=certificate_suboptions()),
        backup_dir=dict(type='path'),
        backup_retention=dict(type='int', default=5),
    )
    if verify:
        spec['certificates']['options']['verify'] = dict(type='dict', options=verify_suboptions(False))
        spec['verify'] = dict(type='dict', options=verify_suboptions(True))
    return spec


def target_options_from_params(params):
    return {'backup_dir': params.get('backup_dir'),
            'backup_retention': params.get('backup_retention')}


# ---------------------------------------------------------------------------------------------
# the generic deploy module: any target by name
# ---------------------------------------------------------------------------------------------

def deploy_argument_spec():
    """Argument spec of the deploy module: the shared options, verify, the target's name and
    its own options (checked against the target's ``option_spec()`` at run time)."""
    spec = files_argument_spec(verify=True)
    spec.update(
        target=dict(type='str', required=True),
        target_options=dict(type='dict', default={}),
        certificate_options=dict(type='dict'),
    )
    spec['certificates']['options']['certificate_options'] = dict(type='dict')
    return spec


def _asks_verify(params):
    if params.get('verify'):
        return True
    return any(isinstance(element, dict) and element.get('verify') for element in params.get('certificates') or [])


def _under(prefix, exc, names):
    """Name an option of the target as ``<prefix>.<option>`` in ``exc`` (same exception)."""
    option = exc.option or ''
    if option and option.split('.')[0] in names:
        exc.option = '%s.%s' % (prefix, option)
    return exc


def deploy_from_params(params, plugins, runner, check_mode=False, no_log_values=None):
    """One deploy for the deploy module: target ``params['target']`` (among ``plugins``, else
    among the connectors installed on this host) with ``params['target_options']`` checked
    against the target's ``option_spec()``; errors about them name ``target_options.<name>``.

    The target class tells which per-certificate options it reads (``certificate_options``);
    ``verify`` for a target without a live endpoint is ignored with a warning."""
    name = params.get('target')
    cls = target_class(name, plugins, discover=True)
    own = target_option_spec(cls)
    given = params.get('target_options')
    if own is not None and isinstance(given, dict):
        for key in sorted(given):
            if key not in own and key in params:
                raise ConfigError('%s is an option of this module, not of the %s target' % (key, name),
                                  option='target_options.%s' % key,
                                  fix='move %s out of target_options, to the top level of the task' % key)
    own = own or {}
    warnings = []
    try:
        options = check_target_options(cls, params.get('target_options'), 'target_options', no_log_values)
        options.update(target_options_from_params(params))
        target = cls(options, runner)
        keys = tuple(getattr(cls, 'certificate_options', None) or VERIFY_CERTIFICATE_OPTIONS)
        keys = tuple(k for k in ('name', 'certificate', 'chain') if k not in keys) + keys
        if 'verify' not in keys and _asks_verify(params):
            warnings.append('verify is ignored: the %s target has no live endpoint to check' % name)
        requests = requests_from_params(params, keys + ('certificate_options',),
                                        needs_destination=getattr(cls, 'needs_destination', True))
        for request in requests:
            prefix = request.options.get('option_prefix', '')
            request.certificate_options = check_options(
                cls, request.options.pop('certificate_options', None) or {}, option=prefix + 'certificate_options',
                kind='target', no_log_values=no_log_values, attribute='certificate_option_spec', keep_unset=True)
        result = deploy(target, requests, check_mode=check_mode)
    except CertforgeError as exc:
        raise _under('target_options', exc, own)
    if not check_mode and result.get('changed'):
        _note_deployed(requests)
    if hasattr(target, 'started'):
        result['started'] = bool(target.started)
    result['warnings'] = warnings + result['warnings']
    return result


def _note_deployed(requests):
    """Certificates written to a certificate_path that a certificate_request call reads: its
    kept result learns them (so the next no-op parses nothing)."""
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.certforge.pki.plugins.module_utils.key_request import note_deployed
    note_deployed([(r.options['certificate_path'], r.key_path, r.certificate_pem) for r in requests
                   if r.options.get('certificate_path') and r.key_path and r.certificate_pem])


# ---------------------------------------------------------------------------------------------
# the connector
# ---------------------------------------------------------------------------------------------

class FilesTarget(TargetConnector):
    """Writes certificate / chain / fullchain files.  No validate, reload or live verify (the
    core re-reads what was written)."""

    name = 'files'
    #: the per-certificate options this target reads (``DeployRequest.options``)
    certificate_options = CERTIFICATE_OPTIONS

    @classmethod
    def option_spec(cls):
        """Argument spec of the target's own options (``target_options`` of the deploy module).
        The file options (backup_dir, backup_retention) are top-level options of every deploy
        module; the files target has no other."""
        return {}

    def __init__(self, options=None, runner=None):
        super(FilesTarget, self).__init__(options, runner)
        TargetEngine(self)   # refuse bad backup options when the target is built

    def files(self, request):
        opts = request.options or {}
        prefix = opts.get('option_prefix', '')
        leaf = request.certificate_pem
        chain = list(request.chain_pem or [])
        specs = []
        for key, label in PATH_OPTIONS:
            path = opts.get(key)
            if not path:
                continue
            if label == 'certificate':
                content = leaf
            elif label == 'chain':
                if not chain:
                    raise ConfigError('chain_path is set but no chain was given', option=prefix + 'chain',
                                      fix='give chain (or a certificate with its chain appended), '
                                          'or drop chain_path')
                content = ''.join(chain)
            else:
                content = leaf + ''.join(chain)
            specs.append(FileSpec(path=path, content=content.encode('ascii'), mode=opts.get('mode'),
                                  owner=opts.get('owner'), group=opts.get('group'), label=label, option=key))
        if not specs:
            raise ConfigError('no destination given', option=prefix + 'certificate_path',
                              fix='set at least one of certificate_path, chain_path, fullchain_path')
        return specs

    def plan(self, request):
        """What a deploy of ``request`` would change (the core's plan; for tests and tools)."""
        return TargetEngine(self).plan(request)


class FilesTargetPlugin:
    """pluggy plugin object: register it in ``core.registry.Registry``."""

    @hookimpl
    def certforge_targets(self):
        return {'files': FilesTarget}


plugin = FilesTargetPlugin()
