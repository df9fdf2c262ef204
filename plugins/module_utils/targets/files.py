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

import base64
import binascii
import hashlib
import os
import re

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    CertforgeError,
    ConfigError,
    DeployError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.files import (
    Transaction,
    ensure_parent_dir,
    file_state,
    format_mode,
    parse_mode,
    resolve_gid,
    resolve_uid,
    sha256_file,
    validate_name,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import TargetConnector, hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import (
    check_target_options,
    deploy,
    target_class,
    target_option_spec,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.model import Applied, DeployRequest, FileSpec, Plan

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

_B64_RE = re.compile(r'^[A-Za-z0-9+/]+={0,2}$')


# ---------------------------------------------------------------------------------------------
# PEM text (standard library only: the no-change path must not import cryptography)
# ---------------------------------------------------------------------------------------------

def split_certificates(text, option='certificate'):
    """Split PEM text into normalised certificate blocks (64-column base64, LF, trailing newline).

    ``core.x509`` finds the blocks; this adds the deploy policy on top: only ``CERTIFICATE``
    blocks and no private key (so a key pasted by mistake never lands in a 0644 certificate
    file), valid base64, and one canonical layout, so the same certificate pasted with other
    line breaks writes the same bytes.  The error never repeats the input."""
    if text is None:
        return []
    if isinstance(text, bytes):
        text = text.decode('ascii', 'replace')
    if 'PRIVATE KEY-----' in text:
        raise ConfigError('contains a private key', option=option,
                          fix='pass only certificates; the private key stays in its own file '
                              '(key_path) and is never deployed by this module')
    blocks = []
    for label, block in zip(cx509.pem_labels(text), cx509.split_pem(text)):
        if label != 'CERTIFICATE':
            raise ConfigError('contains a PEM block of type %r' % label, option=option,
                              fix='pass only -----BEGIN CERTIFICATE----- blocks')
        b64 = ''.join(''.join(block.splitlines()[1:-1]).split())
        try:
            if not _B64_RE.match(b64):
                raise ValueError('bad characters')
            base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error):
            raise ConfigError('certificate block %d is not valid PEM (bad base64)' % (len(blocks) + 1),
                              option=option, fix='pass the PEM text unchanged, as the CA returned it')
        lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
        blocks.append('-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n' % '\n'.join(lines))
    if not blocks:
        raise ConfigError('no PEM certificate found', option=option,
                          fix='give PEM text starting with -----BEGIN CERTIFICATE-----')
    return blocks


# ---------------------------------------------------------------------------------------------
# parsed facts and key match (core.x509, which imports cryptography on first use)
# ---------------------------------------------------------------------------------------------

#: Facts of a certificate in diffs and results (never key material): (our key, the key in
#: ``core.x509.cert_facts``).
_FACTS = (
    ('subject', 'subject_string'),
    ('issuer', 'issuer_string'),
    ('subject_alt_names', 'subject_alt_names'),
    ('serial', 'serial'),
    ('not_before', 'not_before'),
    ('not_after', 'not_after'),
)

# The deploy modules have no passphrase option; this name, handed to core.x509 in its place,
# tells its "the key is encrypted" error apart from the others.
_NO_PASSPHRASE_OPTION = '(no passphrase option)'


def certificate_facts(cert, facts=None):
    """Public facts of a certificate (object, PEM or DER) for diffs and results; ``facts``:
    its ``core.x509.cert_facts`` when already at hand."""
    facts = facts or cx509.cert_facts(cert)
    out = dict((key, facts[source]) for key, source in _FACTS)
    out['fingerprint_sha256'] = facts['fingerprints']['sha256']
    return out


def check_key_matches(cert, key_path, option='key_path'):
    """Raise ConfigError naming ``option`` unless the private key at ``key_path`` belongs to
    ``cert``.  The key is read into memory only to derive its public key."""
    if not os.path.isfile(key_path):
        raise ConfigError('%s does not exist or is not a file' % key_path, option=option,
                          fix='create the key first (the key stays on the host), or correct key_path')
    try:
        with open(key_path, 'rb') as handle:
            data = handle.read()
    except OSError as exc:
        raise ConfigError('cannot read %s (%s)' % (key_path, exc.strerror), option=option,
                          fix='run with become, or give a readable key_path')
    try:
        key = cx509.load_private_key(data, option=option, passphrase_option=_NO_PASSPHRASE_OPTION)
    except ConfigError as exc:  # core.x509 never puts key material in a message
        if _NO_PASSPHRASE_OPTION in (exc.fix or ''):
            raise ConfigError('the key at %s is encrypted' % key_path, option=option,
                              fix='the key match check needs an unencrypted key; drop key_path to skip it')
        raise ConfigError('%s %s' % (key_path, exc.msg), option=option,
                          fix='point key_path at the PEM private key of this certificate')
    if not cx509.key_matches_cert(key, cert):
        raise ConfigError(
            'the private key at %s does not match the certificate' % key_path, option=option,
            fix='deploy the certificate issued for this key, or point key_path at the key the '
                'certificate was issued for')


# ---------------------------------------------------------------------------------------------
# requests from module parameters
# ---------------------------------------------------------------------------------------------

def _merge_value(top, element):
    if isinstance(top, dict) and isinstance(element, dict):
        merged = dict((k, v) for k, v in top.items() if v is not None)
        merged.update((k, v) for k, v in element.items() if v is not None)
        return merged
    return element if element is not None else top


def requests_from_params(params, keys=CERTIFICATE_OPTIONS):
    """Build ``DeployRequest`` objects from module parameters.

    ``certificates`` (batch) elements take their missing per-certificate options from the
    top-level ones; dict options (``verify``) merge key by key.  Without ``certificates`` the
    top-level options describe one certificate."""
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
        if not paths:
            raise ConfigError('no destination given', option=prefix + 'certificate_path',
                              fix='set at least one of certificate_path, chain_path, fullchain_path')
        name = merged.get('name')
        if name is None:
            name = os.path.splitext(os.path.basename(paths[0]))[0] or 'certificate'
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
    )
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
        if 'verify' not in keys and _asks_verify(params):
            warnings.append('verify is ignored: the %s target has no live endpoint to check' % name)
        result = deploy(target, requests_from_params(params, keys), check_mode=check_mode)
    except CertforgeError as exc:
        raise _under('target_options', exc, own)
    if hasattr(target, 'started'):
        result['started'] = bool(target.started)
    result['warnings'] = warnings + result['warnings']
    return result


# ---------------------------------------------------------------------------------------------
# the connector
# ---------------------------------------------------------------------------------------------

def as_list(applied):
    if applied is None:
        return []
    if isinstance(applied, (list, tuple)):
        return list(applied)
    return [applied]


def _count_certificates(path):
    if not path or not os.path.isfile(path):
        return 0
    try:
        with open(path, 'rb') as handle:
            return cx509.pem_labels(handle.read()).count('CERTIFICATE')
    except OSError:
        return 0


class FilesTarget(TargetConnector):
    """Writes certificate / chain / fullchain files.  No validate, reload or live verify:
    ``verify`` re-reads what was written."""

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
        retention = self.options.get('backup_retention')
        self.backup_dir = self.options.get('backup_dir')
        self.backup_retention = 5 if retention is None else retention
        if self.backup_dir is not None and not os.path.isabs(self.backup_dir):
            raise ConfigError('%s is not an absolute path' % self.backup_dir, option='backup_dir',
                              fix='give an absolute directory path')
        # validated here so a bad value fails before anything is planned
        Transaction(backup_dir=self.backup_dir, retention=self.backup_retention)
        self.warnings = []

    # -- plan --------------------------------------------------------------------------------

    def plan(self, request):
        opts = request.options or {}
        prefix = opts.get('option_prefix', '')

        def opt(key):
            return prefix + key

        blocks = split_certificates(request.certificate_pem, opt('certificate'))
        leaf, extra = blocks[0], blocks[1:]
        chain = []
        for text in request.chain_pem or []:
            chain.extend(split_certificates(text, opt('chain')))
        if extra and chain and extra != chain:
            raise ConfigError('the certificate carries a chain that differs from chain',
                              option=opt('chain'), fix='give the chain in one place only')
        chain = chain or extra
        mode = parse_mode(opts.get('mode'), opt('mode'))
        uid = resolve_uid(opts.get('owner'), opt('owner'))
        gid = resolve_gid(opts.get('group'), opt('group'))

        desired = []
        for key, label in PATH_OPTIONS:
            path = opts.get(key)
            if not path:
                continue
            if label == 'certificate':
                content = leaf
            elif label == 'chain':
                if not chain:
                    raise ConfigError('chain_path is set but no chain was given', option=opt('chain'),
                                      fix='give chain (or a certificate with its chain appended), '
                                          'or drop chain_path')
                content = ''.join(chain)
            else:
                content = leaf + ''.join(chain)
            desired.append((key, label, path, content.encode('ascii')))
        if not desired:
            raise ConfigError('no destination given', option=opt('certificate_path'),
                              fix='set at least one of certificate_path, chain_path, fullchain_path')

        plan = Plan(request=request)
        seen = {}
        changes = []
        for key, label, path, data in desired:
            option = opt(key)
            if not os.path.isabs(path):
                raise ConfigError('%s is not an absolute path' % path, option=option,
                                  fix='give an absolute path')
            path = os.path.normpath(path)
            if path in seen:
                raise ConfigError('%s is also %s' % (path, seen[path]), option=option,
                                  fix='give each file its own path')
            seen[path] = option
            ensure_parent_dir(path, option)
            if os.path.islink(path):
                raise ConfigError('%s is a symbolic link' % path, option=option,
                                  fix='point the option at the real file: files are replaced '
                                      'atomically, not written through links')
            if os.path.exists(path) and not os.path.isfile(path):
                raise ConfigError('%s exists and is not a regular file' % path, option=option,
                                  fix='remove it or choose another path')
            state = file_state(path)
            why = self._differences(state, data, mode, uid, gid)
            if why:
                plan.files.append(FileSpec(path=path, content=data, mode=format_mode(mode),
                                           owner=uid, group=gid, label=label))
                changes.append((label, path, why, state))
            else:
                plan.unchanged.append(path)
        if plan.files:
            self._inspect(plan, leaf, chain, opt, changes)
        return plan

    @staticmethod
    def _differences(state, data, mode, uid, gid):
        if not state['exists']:
            return ['new file']
        why = []
        if state['sha256'] != hashlib.sha256(data).hexdigest():
            why.append('content changes')
        if mode is not None and state['mode'] != format_mode(mode):
            why.append('mode %s -> %s' % (state['mode'], format_mode(mode)))
        if uid is not None and state['uid'] != uid:
            why.append('owner %s -> %s' % (state['uid'], uid))
        if gid is not None and state['gid'] != gid:
            why.append('group %s -> %s' % (state['gid'], gid))
        return why

    def _inspect(self, plan, leaf, chain, opt, changes):
        """Parse what will be written (diff facts), check leaf order and the key: before any write."""
        request = plan.request
        cert = cx509.load_certificate(leaf, option=opt('certificate'))
        chain_certs = [cx509.load_certificate(pem, option=opt('chain')) for pem in chain]
        facts = cx509.cert_facts(cert)
        if facts['is_ca'] and chain_certs and not all(cx509.cert_facts(c)['is_ca'] for c in chain_certs):
            raise ConfigError('the first certificate is a CA certificate but a later one is not',
                              option=opt('certificate'),
                              fix='put the leaf (server) certificate first, then its issuers')
        if request.key_path:
            check_key_matches(cert, request.key_path, opt('key_path'))
        after = certificate_facts(cert, facts)
        after['chain_length'] = len(chain_certs)
        before = self._current_facts(plan)
        after['files'] = dict(
            (spec.path, {'mode': spec.mode or (before.get('files', {}).get(spec.path, {}).get('mode'))})
            for spec in plan.files)
        plan.diff = {'before': before, 'after': after}
        for label, path, why, state in changes:
            detail = list(why)
            if 'content changes' in detail and before.get('serial') and label != 'chain':
                detail[detail.index('content changes')] = 'serial %s -> %s' % (before['serial'], after['serial'])
            elif detail == ['new file'] and label != 'chain':
                detail = ['new file (serial %s, not after %s)' % (after['serial'], after['not_after'])]
            plan.reasons.append('%s: %s %s: %s' % (request.name, label, path, ', '.join(detail)))

    @staticmethod
    def _current_facts(plan):
        """Facts of the certificate deployed now (certificate_path, else fullchain_path)."""
        before = {}
        files = {}
        for spec in plan.files:
            state = file_state(spec.path)
            if state['exists']:
                files[spec.path] = {'mode': state['mode']}
        opts = plan.request.options or {}
        for key in ('certificate_path', 'fullchain_path'):
            path = opts.get(key)
            if not path or not os.path.isfile(path):
                continue
            try:
                with open(path, 'rb') as handle:
                    current = cx509.load_certificates(handle.read().decode('ascii', 'replace'), option=key)
                before = certificate_facts(current[0])
                before['chain_length'] = len(current) - 1 if key == 'fullchain_path' \
                    else _count_certificates(opts.get('chain_path'))
            except (CertforgeError, OSError):
                before = {'error': '%s does not hold a PEM certificate' % path}
            break
        if files:
            before['files'] = files
        return before

    # -- apply / validate / reload / verify / rollback ---------------------------------------

    def transaction(self):
        return Transaction(backup_dir=self.backup_dir, retention=self.backup_retention)

    def apply(self, plan, transaction=None):
        """Stage the plan's files.  With a shared ``transaction`` (one per deploy, owned by the
        caller) nothing is written until the caller commits it; without, commit here."""
        own = transaction is None
        txn = self.transaction() if own else transaction
        for spec in plan.files:
            txn.stage(spec.path, spec.content, mode=spec.mode, owner=spec.owner, group=spec.group,
                      name=plan.request.name)
        applied = Applied(plan=plan, transaction=txn)
        if own:
            txn.commit()
            self.record_backups(applied)
        return applied

    @staticmethod
    def record_backups(applied):
        txn = applied.transaction
        applied.backups = dict((spec.path, txn.backups.get(spec.path)) for spec in applied.plan.files)
        return applied.backups

    def validate(self, applied):
        return None

    def reload(self, applied):
        """Return True when a reload command ran; the files target has none."""
        return False

    def verify(self, applied):
        """Re-read every written file and compare it with what was planned.  Returns the value to
        report as the served serial (None: there is no live endpoint)."""
        for item in as_list(applied):
            prefix = (item.plan.request.options or {}).get('option_prefix', '')
            for spec in item.plan.files:
                if sha256_file(spec.path) != hashlib.sha256(spec.content).hexdigest():
                    raise DeployError('%s does not hold what was written' % spec.path,
                                      option='%s%s_path' % (prefix, spec.label),
                                      fix='check whether another process writes this file')
        return None

    def rollback(self, applied, reload=False):
        """Restore every file of ``applied`` (one Applied or a list) byte-exact; reload again
        when asked (not after a failed restore: the server keeps what it has).  Never raises:
        returns ``{'restored', 'removed', 'reloaded', 'errors', 'reload_error'}``."""
        report = {'restored': [], 'removed': [], 'reloaded': False, 'errors': [], 'reload_error': None}
        seen = []
        for item in as_list(applied):
            txn = item.transaction
            if txn is None or any(txn is other for other in seen):
                continue
            seen.append(txn)
            try:
                done = txn.rollback()
            except (CertforgeError, OSError, RuntimeError) as exc:
                report['errors'].append(str(exc))
                continue
            report['restored'].extend(done['restored'])
            report['removed'].extend(done['removed'])
        if reload and not report['errors']:
            try:
                report['reloaded'] = bool(self.reload(applied))
            except CertforgeError as exc:
                report['reload_error'] = exc.msg
        return report


class FilesTargetPlugin:
    """pluggy plugin object: register it in ``core.registry.Registry``."""

    @hookimpl
    def certforge_targets(self):
        return {'files': FilesTarget}


plugin = FilesTargetPlugin()
