# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The core's half of every deploy: planning, the transaction, backups and rollback.

A target connector (``sdk.TargetConnector``) only declares the files it writes and how to
validate, reload and verify; ``TargetEngine`` wraps it and does the rest the same way for every
target:

* plan: normalise the certificate and chain, ask ``files()``, compare bytes, mode and owner
  (standard library only: a run where nothing changes does not import cryptography); when
  something changes, parse the certificate for the diff, check leaf order and the key match,
  all before anything is written;
* apply: stage every file of every certificate in ONE ``core.files.Transaction`` (byte-exact
  backups, temp file + fsync + rename);
* verify: re-read every written file, then the connector's live check;
* rollback: restore every file byte-exact, reload again when asked.

Runs on the host that runs the deploy (Python 3.9+).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import dataclasses
import hashlib
import os
import re

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import CertforgeError, ConfigError, DeployError
from ansible_collections.certforge.pki.plugins.module_utils.core.files import (
    Transaction,
    ensure_parent_dir,
    file_state,
    format_mode,
    parse_mode,
    resolve_gid,
    resolve_uid,
    sha256_file,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.model import Applied, FileSpec, Plan

_B64_RE = re.compile(r'^[A-Za-z0-9+/]+={0,2}$')
SECRET_MODE = 0o600


# ---------------------------------------------------------------------------------------------
# PEM text (standard library only: the no-change path must not import cryptography)
# ---------------------------------------------------------------------------------------------

def split_certificates(text, option='certificate'):
    """Split PEM text into normalised certificate blocks (64-column base64, LF, trailing newline).

    Only ``CERTIFICATE`` blocks and no private key (so a key pasted by mistake never lands in a
    0644 certificate file), valid base64, and one canonical layout, so the same certificate
    pasted with other line breaks writes the same bytes.  The error never repeats the input."""
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


def certificate_blocks(data):
    """The CERTIFICATE blocks of a file's bytes (other blocks, such as a key, skipped)."""
    text = data.decode('ascii', 'replace') if isinstance(data, bytes) else data
    return [block for label, block in zip(cx509.pem_labels(text), cx509.split_pem(text)) if label == 'CERTIFICATE']


# ---------------------------------------------------------------------------------------------
# parsed facts and key match (core.x509, which imports cryptography on first use)
# ---------------------------------------------------------------------------------------------

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
    """Public facts of a certificate (object, PEM or DER) for diffs and results."""
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


def count_certificates(path):
    if not path or not os.path.isfile(path):
        return 0
    try:
        with open(path, 'rb') as handle:
            return cx509.pem_labels(handle.read()).count('CERTIFICATE')
    except OSError:
        return 0


def as_list(applied):
    if applied is None:
        return []
    if isinstance(applied, (list, tuple)):
        return list(applied)
    return [applied]


# ---------------------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------------------

class TargetEngine:
    """Wraps a target connector; the sequence in ``core.lifecycle.deploy`` talks to this."""

    def __init__(self, connector):
        self.connector = connector
        options = getattr(connector, 'options', None) or {}
        retention = options.get('backup_retention')
        self.backup_dir = options.get('backup_dir')
        self.backup_retention = 5 if retention is None else retention
        if self.backup_dir is not None and not os.path.isabs(self.backup_dir):
            raise ConfigError('%s is not an absolute path' % self.backup_dir, option='backup_dir',
                              fix='give an absolute directory path')
        # validated here so a bad value fails before anything is planned
        Transaction(backup_dir=self.backup_dir, retention=self.backup_retention)

    @property
    def name(self):
        return getattr(self.connector, 'name', None)

    @property
    def warnings(self):
        return getattr(self.connector, 'warnings', None) or []

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
        normalised = dataclasses.replace(request, certificate_pem=leaf, chain_pem=list(chain))
        specs = list(self.connector.files(normalised) or [])
        if not specs:
            raise ConfigError('no destination given', option=opt('certificate_path'),
                              fix='set at least one of certificate_path, chain_path, fullchain_path')

        plan = Plan(request=request)
        seen = {}
        changes = []
        desired = []
        for spec in specs:
            option = opt(spec.option or '%s_path' % (spec.label or 'certificate'))
            path = spec.path
            if not path or not os.path.isabs(path):
                raise ConfigError('%s is not an absolute path' % (path,), option=option,
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
            data = spec.content.encode('utf-8') if not isinstance(spec.content, bytes) else spec.content
            mode = parse_mode(spec.mode, opt('mode'))
            if mode is None and spec.secret:
                mode = SECRET_MODE
            uid = resolve_uid(spec.owner, opt('owner'))
            gid = resolve_gid(spec.group, opt('group'))
            final = FileSpec(path=path, content=data, mode=format_mode(mode), owner=uid, group=gid,
                             label=spec.label, option=spec.option, secret=spec.secret)
            desired.append(final)
            why = self._differences(file_state(path), data, mode, uid, gid)
            if why:
                plan.files.append(final)
                changes.append((spec.label, path, why))
            else:
                plan.unchanged.append(path)
        if plan.files:
            self._inspect(plan, leaf, chain, opt, changes, desired)
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

    def _inspect(self, plan, leaf, chain, opt, changes, desired):
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
        before = self._current_facts(plan, desired)
        after['files'] = dict(
            (spec.path, {'mode': spec.mode or (before.get('files', {}).get(spec.path, {}).get('mode'))})
            for spec in plan.files)
        plan.diff = {'before': before, 'after': after}
        for label, path, why in changes:
            detail = list(why)
            if 'content changes' in detail and before.get('serial') and label != 'chain':
                detail[detail.index('content changes')] = 'serial %s -> %s' % (before['serial'], after['serial'])
            elif detail == ['new file'] and label != 'chain':
                detail = ['new file (serial %s, not after %s)' % (after['serial'], after['not_after'])]
            plan.reasons.append('%s: %s %s: %s' % (request.name, label, path, ', '.join(detail)))

    @staticmethod
    def _current_facts(plan, desired):
        """Facts of the certificate deployed now: from the leaf file if the target writes one,
        else from the first other file holding certificates.  Never key material."""
        before = {}
        files = {}
        for spec in plan.files:
            state = file_state(spec.path)
            if state['exists']:
                files[spec.path] = {'mode': state['mode']}
        ordered = [s for s in desired if s.label == 'certificate'] + \
                  [s for s in desired if s.label not in ('certificate', 'chain')]
        chain_files = [s.path for s in desired if s.label == 'chain']
        for spec in ordered:
            if not os.path.isfile(spec.path):
                continue
            try:
                with open(spec.path, 'rb') as handle:
                    blocks = certificate_blocks(handle.read())
                current = cx509.load_certificates(blocks, option=spec.option or 'certificate_path')
                if not current:
                    raise ConfigError('no certificate')
                before = certificate_facts(current[0])
                before['chain_length'] = (count_certificates(chain_files[0]) if chain_files else 0) \
                    if spec.label == 'certificate' else len(current) - 1
            except (CertforgeError, OSError):
                before = {'error': '%s does not hold a PEM certificate' % spec.path}
            break
        if files:
            before['files'] = files
        return before

    # -- apply / validate / reload / verify / rollback ---------------------------------------

    def transaction(self):
        return Transaction(backup_dir=self.backup_dir, retention=self.backup_retention)

    def apply(self, plan, transaction=None):
        """Stage the plan's files in ``transaction`` (committed by the caller); without one,
        write them now."""
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
        return self.connector.validate(as_list(applied))

    def reload(self, applied):
        return bool(self.connector.reload(as_list(applied)))

    def verify(self, applied):
        """Re-read every written file, then the connector's live check; returns the served
        serial (or None)."""
        for item in as_list(applied):
            prefix = (item.plan.request.options or {}).get('option_prefix', '')
            for spec in item.plan.files:
                if sha256_file(spec.path) != hashlib.sha256(spec.content).hexdigest():
                    raise DeployError('%s does not hold what was written' % spec.path,
                                      option=prefix + (spec.option or '%s_path' % spec.label),
                                      fix='check whether another process writes this file')
        return self.connector.verify(applied)

    def rollback(self, applied, reload=False):
        """Restore every file of ``applied`` byte-exact; reload again when asked (not after a
        failed restore: the server keeps what it has).  Never raises: returns ``{'restored',
        'removed', 'reloaded', 'errors', 'reload_error'}``."""
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
                report['reloaded'] = self.reload(applied)
            except CertforgeError as exc:
                report['reload_error'] = exc.msg
            except Exception as exc:  # a third-party reload must not hide the first failure
                report['reload_error'] = '%s: %s' % (type(exc).__name__, exc)
        return report
