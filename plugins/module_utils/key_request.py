# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private key and CSR on the managed host: the planning and writing behind
``certforge.pki.certificate_request`` (one request, or many in one call)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import grp
import os
import pwd
import stat

from ansible_collections.certforge.pki.plugins.module_utils.core import files as cfiles
from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import ArgumentSpec, destination, optional_file
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError

from ansible_collections.certforge.pki.plugins.module_utils.key_request_spec import (  # noqa: F401 pylint: disable=unused-import
    DEFAULTS, REQUEST_OPTIONS, REQUIRED_ONE_OF, argument_spec, merge_request)
from ansible_collections.certforge.pki.plugins.module_utils import request_cache, role_requests


def _destination(value, option, params):
    """``destination``, except that a directory that is missing (or is no directory) is left to
    ``run``: it may be O(directory), made (or refused, naming O(directory)) by this call."""
    path = os.path.expanduser(value)
    if not path.endswith('/') and not os.path.isdir(os.path.dirname(os.path.abspath(path)) or '/'):
        return
    destination(value, option, params)


class _Spec(ArgumentSpec):
    """O(refuse) wins over every other check: what the caller found wrong is what is reported."""

    def check(self, params, check_mode=False):
        if params.get('refuse'):
            raise ConfigError('; '.join(params['refuse']))
        if params.get('role_vars') is not None:
            params['requests'] = expand_role_vars(params['role_vars'])
        super(_Spec, self).check(params, check_mode=check_mode)


def expand_role_vars(role_vars):
    """O(role_vars) -> the requests they stand for, typed like O(requests); the role variables'
    problems raised first, each naming its variable."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    role = role_requests.with_defaults(role_vars)
    found = role_requests.problems(role)
    if found:
        raise ConfigError('; '.join(found))
    validated = ArgumentSpecValidator({'requests': argument_spec()['requests']}).validate(
        {'requests': role_requests.requests(role)})
    if validated.error_messages:
        raise ConfigError('; '.join(validated.error_messages), option='certificate_list',
                          fix='give each entry the types the role documents (ansible-doc -t role certforge.pki.certificate)')
    return validated.validated_parameters['requests']


def _argument_spec():
    checks = {}
    for prefix in ('', 'requests.'):
        checks.update({prefix + 'privatekey_path': [_destination], prefix + 'csr_path': [_destination],
                       prefix + 'certificate_path': [optional_file]})
    return _Spec(argument_spec(), required_one_of=REQUIRED_ONE_OF, checks=checks)


SPEC = _argument_spec()

KEY_MODE = 0o600
CSR_MODE = 0o644


# ----------------------------------------------------------------------------- helpers

def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _read_file(path, option):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        raise ConfigError('cannot read %s (%s)' % (path, exc.strerror or exc), option=option,
                          fix='make the file readable by the user the task runs as (become), or fix the path')


def _stat(path, option):
    try:
        st = os.stat(path)
    except OSError:
        if os.path.islink(path):
            raise ConfigError('%s is a dangling symbolic link' % path, option=option,
                              fix='remove the link or point it to an existing file')
        return None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError('%s exists but is not a regular file' % path, option=option,
                          fix='point it to a file, not a directory or device')
    return st


def _backup_name(path, now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    base = '%s.%s~' % (path, now.strftime('%Y%m%dT%H%M%S.%fZ'))
    candidate, index = base, 1
    while os.path.lexists(candidate):
        candidate = '%s.%d~' % (base[:-1], index)
        index += 1
    return candidate


# ----------------------------------------------------------------------------- one request

class KeyRequest:
    """Plan and apply one key + CSR.  ``plan()`` reads and decides without writing; ``apply()``
    writes what the plan says.  Every input problem surfaces in ``plan()``."""

    def __init__(self, params, index=None, check_mode=False, warn=None, made_dirs=()):
        self.p = params
        self.made_dirs = made_dirs   # directories this call makes before it writes
        self.index = index
        self.check_mode = check_mode
        self.warn = warn or (lambda msg: None)
        self.reasons = []
        self.msg = None
        self.key = None              # private key object after this run (None: not known in check mode)
        self.key_pem = None          # bytes to write (new key) or None
        self.old_key_facts = None
        self.csr = None
        self.csr_pem = None          # text after this run
        self.write_csr = False
        self.old_csr_facts = None
        self.fix_key_attrs = {}
        self.fix_csr_attrs = {}
        self.backup_file = None
        self.current_certificate = None

    def opt(self, name):
        if self.index is None:
            return name
        return 'requests[%d].%s' % (self.index, name)

    # ------------------------------------------------------------------ validation
    def _validate(self):
        p = self.p
        if not p.get('privatekey_path'):
            raise ConfigError('is required', option=self.opt('privatekey_path'),
                              fix='give the path of the private key on the host')
        self.key_path = os.path.abspath(p['privatekey_path'])
        self.csr_path = os.path.abspath(p['csr_path']) if p.get('csr_path') else None
        self.cert_path = os.path.abspath(p['certificate_path']) if p.get('certificate_path') else None
        if self.csr_path and self.csr_path == self.key_path:
            raise ConfigError('is the same file as privatekey_path', option=self.opt('csr_path'),
                              fix='give the CSR its own file')
        self.key_type = cx509.normalize_key_type(p.get('privatekey_type') or 'ECDSA', option=self.opt('privatekey_type'))
        self.key_size = self.key_curve = None
        if self.key_type == 'RSA':
            size = p.get('privatekey_size') or 2048
            if size not in cx509.RSA_SIZES:
                raise ConfigError('RSA key size %s is not supported' % (size,), option=self.opt('privatekey_size'),
                                  fix='use one of %s' % ', '.join(str(s) for s in cx509.RSA_SIZES))
            self.key_size = size
        elif self.key_type == 'ECDSA':
            self.key_curve = cx509.normalize_curve(p.get('privatekey_curve') or 'secp256r1',
                                                   option=self.opt('privatekey_curve'))

        # in check mode the directory may be one an earlier task would have made
        if not self._parent_made(self.key_path):
            cfiles.ensure_parent_dir(self.key_path, self.opt('privatekey_path'))
        if self.csr_path and not self._parent_made(self.csr_path):
            cfiles.ensure_parent_dir(self.csr_path, self.opt('csr_path'))
        self.uid = cfiles.resolve_uid(p.get('owner'), option=self.opt('owner'))
        self.gid = cfiles.resolve_gid(p.get('group'), option=self.opt('group'))
        self.csr_mode = cfiles.parse_mode(p.get('mode'), option=self.opt('mode'))

        # subject, SANs, usages
        subject = p.get('subject') or {}
        if p.get('common_name'):
            if isinstance(subject, dict):
                subject = dict((k, v) for k, v in subject.items()
                               if str(k).strip().lower() not in ('cn', 'commonname', '2.5.4.3'))
                subject['commonName'] = p['common_name']
            else:
                subject = [item for item in subject
                           if not any(str(k).strip().lower() in ('cn', 'commonname', '2.5.4.3') for k in item)]
                subject.append({'commonName': p['common_name']})
        self.subject_name = cx509.dict_to_name(subject, option=self.opt('subject'))
        self.subject = cx509.name_to_dict(self.subject_name)
        sans = p.get('subject_alt_names')
        if sans is None:
            cn = self.subject.get('commonName')
            if isinstance(cn, list):
                cn = cn[0]
            sans = []
            if cn:
                try:
                    sans = cx509.normalize_san_strings([cn], option=self.opt('common_name'))
                except ConfigError:
                    raise ConfigError('%r is not a DNS name or IP address, so it cannot be the default SAN' % cn,
                                      option=self.opt('common_name'),
                                      fix='set subject_alt_names explicitly (an empty list for none)')
        else:
            sans = cx509.normalize_san_strings(sans, option=self.opt('subject_alt_names'))
        self.sans = sans
        if not len(self.subject_name) and not self.sans:
            raise ConfigError('the CSR would have neither a subject nor SANs', option=self.opt('common_name'),
                              fix='set common_name, subject or subject_alt_names')
        self.key_usage = cx509.normalize_key_usage(p.get('key_usage'), option=self.opt('key_usage'))
        cx509.key_usage_extension(p.get('key_usage'), option=self.opt('key_usage'))
        self.eku = cx509.normalize_extended_key_usage(p.get('extended_key_usage'),
                                                      option=self.opt('extended_key_usage'))

    def _parent_made(self, path):
        """The directory of ``path`` is made by this call (O(directory)), or, in check mode, by an
        earlier task that would have run."""
        parent = os.path.dirname(path)
        if parent in self.made_dirs:
            return True
        return self.check_mode and not os.path.lexists(parent)

    def _want_key_facts(self):
        facts = {'type': self.key_type}
        if self.key_type == 'RSA':
            facts['size'] = self.key_size
        elif self.key_type == 'ECDSA':
            facts['curve'] = self.key_curve
            facts['size'] = {'secp256r1': 256, 'secp384r1': 384}[self.key_curve]
        else:
            facts['size'] = 256
        return facts

    # ------------------------------------------------------------------ key
    def _plan_key(self):
        p = self.p
        st = _stat(self.key_path, self.opt('privatekey_path'))
        self.key_stat = st
        passphrase = p.get('privatekey_passphrase')
        existing = None
        if st is not None:
            data = _read_file(self.key_path, self.opt('privatekey_path'))
            existing = cx509.load_private_key(data, passphrase=passphrase, option=self.opt('privatekey_path'),
                                              passphrase_option=self.opt('privatekey_passphrase'))
            desc = cx509.key_description(existing)
            self.old_key_facts = dict(desc, public_key_fingerprint=cx509.public_key_fingerprint(existing),
                                      mode=cfiles.format_mode(stat.S_IMODE(st.st_mode)),
                                      owner=_user_name(st.st_uid), group=_group_name(st.st_gid))
            want = self._want_key_facts()
            mismatch = []
            if desc.get('type') != want['type']:
                mismatch.append('key_type_changed')
            elif want['type'] == 'RSA' and desc.get('size') != want['size']:
                mismatch.append('key_size_changed')
            elif want['type'] == 'ECDSA' and desc.get('curve') != want['curve']:
                mismatch.append('key_curve_changed')
            if p.get('rotate_key'):
                self.reasons.append('key_rotated')
            self.reasons.extend(mismatch)
            replace = bool(p.get('rotate_key') or mismatch)
        else:
            self.reasons.append('key_created')
            replace = True

        self.key_replaced = replace
        if st is not None:
            current_mode = stat.S_IMODE(st.st_mode)
            self.new_key_mode = current_mode & KEY_MODE
        else:
            self.new_key_mode = KEY_MODE
        if replace:
            if not self.check_mode:
                self.key = cx509.generate_private_key(self.key_type, size=self.key_size, curve=self.key_curve,
                                                      type_option=self.opt('privatekey_type'),
                                                      size_option=self.opt('privatekey_size'),
                                                      curve_option=self.opt('privatekey_curve'))
                self.key_pem = cx509.private_key_to_pem(self.key, passphrase)
        else:
            self.key = existing
            # attributes of a kept key: never wider than 0600, owner/group as asked
            current_mode = stat.S_IMODE(st.st_mode)
            if current_mode & ~KEY_MODE & 0o7777:
                self.fix_key_attrs['mode'] = current_mode & KEY_MODE
                self.reasons.append('key_mode_tightened')
            if self.uid is not None and st.st_uid != self.uid:
                self.fix_key_attrs['uid'] = self.uid
                self.reasons.append('key_owner_changed')
            if self.gid is not None and st.st_gid != self.gid:
                self.fix_key_attrs['gid'] = self.gid
                self.reasons.append('key_group_changed')

    # ------------------------------------------------------------------ CSR
    def _want_csr_facts(self):
        facts = {
            'subject': self.subject,
            'subject_string': self.subject_name.rfc4514_string(),
            'subject_alt_names': list(self.sans),
            'key_usage': list(self.key_usage),
            'extended_key_usage': list(self.eku),
        }
        if self.key is not None:
            facts['public_key'] = cx509.public_key_facts(self.key)
        else:
            facts['public_key'] = dict(self._want_key_facts(), fingerprint=None)
        return facts

    def _compare_csr(self, have):
        reasons = []
        if not have.get('signature_valid'):
            reasons.append('csr_signature_invalid')
        if have.get('subject') != self.subject:
            reasons.append('csr_subject_changed')
        if sorted(have.get('subject_alt_names') or []) != sorted(self.sans):
            reasons.append('csr_san_changed')
        if sorted(have.get('key_usage') or []) != sorted(self.key_usage):
            reasons.append('csr_key_usage_changed')
        if sorted(have.get('extended_key_usage') or []) != sorted(self.eku):
            reasons.append('csr_extended_key_usage_changed')
        if self.key_replaced or self.key is None:
            reasons.append('csr_key_changed')
        elif (have.get('public_key') or {}).get('fingerprint') != cx509.public_key_fingerprint(self.key):
            reasons.append('csr_key_changed')
        return reasons

    def _plan_csr(self):
        existing_pem = None
        st = None
        if self.csr_path:
            st = _stat(self.csr_path, self.opt('csr_path'))
        self.csr_stat = st
        csr_reasons = []
        if st is not None:
            data = _read_file(self.csr_path, self.opt('csr_path'))
            if cx509.pem_kind(data) in ('private_key', 'certificate'):
                raise ConfigError('%s holds %s, not a CSR; refusing to overwrite it'
                                  % (self.csr_path, cx509.describe_pem(data)), option=self.opt('csr_path'),
                                  fix='give the CSR its own file')
            try:
                existing = cx509.load_csr(data, option=self.opt('csr_path'))
                self.old_csr_facts = cx509.csr_facts(existing)
                existing_pem = cx509.to_pem(existing)
            except ConfigError:
                existing = None
            if existing is None:
                csr_reasons.append('csr_unreadable')
            else:
                csr_reasons.extend(self._compare_csr(self.old_csr_facts))
        elif self.csr_path:
            csr_reasons.append('csr_created')

        if self.csr_path and not csr_reasons:
            self.csr_pem = existing_pem
            self.csr_facts = self.old_csr_facts
        elif self.key is not None:
            self.csr = cx509.build_csr(self.key, self.subject_name, self.sans, self.key_usage, self.eku,
                                       subject_option=self.opt('subject'),
                                       san_option=self.opt('subject_alt_names'),
                                       ku_option=self.opt('key_usage'), eku_option=self.opt('extended_key_usage'))
            self.csr_pem = cx509.to_pem(self.csr)
            self.csr_facts = cx509.csr_facts(self.csr)
        else:
            self.csr_pem = None
            self.csr_facts = self._want_csr_facts()
            self.msg = ('check mode - the private key would be %s, so no CSR can be produced for it yet'
                        % ('created' if self.key_stat is None else 'replaced'))
        self.write_csr = bool(self.csr_path and csr_reasons)
        self.reasons.extend(csr_reasons)

        if self.csr_path and st is not None:
            want_mode = self.csr_mode
            if want_mode is not None and stat.S_IMODE(st.st_mode) != want_mode:
                self.fix_csr_attrs['mode'] = want_mode
                self.reasons.append('csr_mode_changed')
            if self.uid is not None and st.st_uid != self.uid:
                self.fix_csr_attrs['uid'] = self.uid
                self.reasons.append('csr_owner_changed')
            if self.gid is not None and st.st_gid != self.gid:
                self.fix_csr_attrs['gid'] = self.gid
                self.reasons.append('csr_group_changed')

    # ------------------------------------------------------------------ certificate
    def _plan_certificate(self):
        if not self.cert_path:
            return
        if not os.path.exists(self.cert_path):
            self.current_certificate = None
            return
        try:
            data = _read_file(self.cert_path, self.opt('certificate_path'))
            self.current_certificate = certificate_in_use(self.cert_path, data, self.key,
                                                          option=self.opt('certificate_path'))
        except ConfigError as exc:
            self.warn('%s: the current certificate cannot be parsed: %s' % (self.opt('certificate_path'), exc.msg))
            self.current_certificate = {'path': self.cert_path, 'error': str(exc)}

    def plan(self):
        self._validate()
        self._plan_key()
        self._plan_csr()
        self._plan_certificate()
        return self

    @property
    def changed(self):
        return bool(self.reasons)

    # ------------------------------------------------------------------ apply
    def _write(self, path, data, mode, option, owner=None, group=None):
        try:
            cfiles.atomic_write(path, data, mode=mode, owner=owner, group=group)
        except OSError as exc:
            if isinstance(exc, PermissionError) and (owner is not None or group is not None):
                fix = 'run the task with become (only root can give files away), or drop owner/group'
            else:
                fix = 'check permissions of the directory and free space, then run again'
            raise ConfigError('cannot write %s (%s)' % (path, exc.strerror or exc), option=self.opt(option), fix=fix)

    def apply(self):
        if self.check_mode:
            return
        if self.key_pem is not None:
            if self.key_stat is not None and self.p.get('backup'):
                self.backup_file = _backup_name(self.key_path)
                self._write(self.backup_file, _read_file(self.key_path, self.opt('privatekey_path')),
                            KEY_MODE, 'backup')
            self._write(self.key_path, self.key_pem, self.new_key_mode, 'privatekey_path',
                        owner=self.uid, group=self.gid)
        elif self.fix_key_attrs:
            self._fix_attrs(self.key_path, self.fix_key_attrs, 'privatekey_path')
        if self.write_csr:
            mode = self.csr_mode
            if mode is None and self.csr_stat is None:
                mode = CSR_MODE
            self._write(self.csr_path, self.csr_pem.encode('ascii'), mode, 'csr_path',
                        owner=self.uid, group=self.gid)
        elif self.fix_csr_attrs:
            self._fix_attrs(self.csr_path, self.fix_csr_attrs, 'csr_path')

    def _fix_attrs(self, path, attrs, option):
        try:
            if 'uid' in attrs or 'gid' in attrs:
                os.chown(path, attrs.get('uid', -1), attrs.get('gid', -1))
            if 'mode' in attrs:
                os.chmod(path, attrs['mode'])
        except OSError as exc:
            raise ConfigError('cannot set owner/group/mode of %s (%s)' % (path, exc.strerror or exc),
                              option=self.opt(option), fix='run the task with become, or drop owner/group')

    # ------------------------------------------------------------------ results
    def _key_after(self):
        facts = self._want_key_facts() if self.key is None else cx509.key_description(self.key)
        facts = dict(facts)
        facts['path'] = self.key_path
        facts['public_key_fingerprint'] = cx509.public_key_fingerprint(self.key) if self.key is not None else None
        facts['encrypted'] = bool(self.p.get('privatekey_passphrase'))
        if self.key_replaced:
            mode = self.new_key_mode
            uid = self.uid if self.uid is not None else (self.key_stat.st_uid if self.key_stat else os.geteuid())
            gid = self.gid if self.gid is not None else (self.key_stat.st_gid if self.key_stat else os.getegid())
        else:
            mode = self.fix_key_attrs.get('mode', stat.S_IMODE(self.key_stat.st_mode))
            uid = self.fix_key_attrs.get('uid', self.key_stat.st_uid)
            gid = self.fix_key_attrs.get('gid', self.key_stat.st_gid)
        facts['mode'] = cfiles.format_mode(mode)
        facts['owner'] = _user_name(uid)
        facts['group'] = _group_name(gid)
        return facts

    def _diff(self, key_after):
        keys = ('type', 'size', 'curve', 'public_key_fingerprint', 'mode', 'owner', 'group')
        before = {}
        if self.old_key_facts:
            before['privatekey'] = dict((k, self.old_key_facts.get(k)) for k in keys if k in self.old_key_facts)
        after = {'privatekey': dict((k, key_after.get(k)) for k in keys if k in key_after)}
        csr_keys = ('subject', 'subject_alt_names', 'key_usage', 'extended_key_usage')
        if self.csr_path:
            if self.old_csr_facts:
                before['csr'] = dict((k, self.old_csr_facts.get(k)) for k in csr_keys)
                before['csr']['public_key_fingerprint'] = self.old_csr_facts['public_key']['fingerprint']
            after['csr'] = dict((k, self.csr_facts.get(k)) for k in csr_keys)
            after['csr']['public_key_fingerprint'] = (self.csr_facts.get('public_key') or {}).get('fingerprint')
        return {'before': before, 'after': after,
                'before_header': self.key_path, 'after_header': self.key_path}

    def result(self, diff=False):
        key_after = self._key_after()
        res = {
            'changed': self.changed,
            'changed_reasons': list(self.reasons),
            'privatekey_changed': bool(self.key_replaced),
            'csr_changed': bool(self.write_csr),
            'privatekey': key_after,
            'csr': self.csr_pem,
            'csr_path': self.csr_path,
            'csr_info': self.csr_facts,
        }
        if self.cert_path:
            res['current_certificate'] = self.current_certificate
        if self.backup_file:
            res['backup_file'] = self.backup_file
        if self.p.get('meta') is not None:
            res['meta'] = self.p['meta']
        if self.msg:
            res['msg'] = self.msg
        if diff:
            res['diff'] = self._diff(key_after)
        return res


def certificate_in_use(path, data, key, option='certificate_path'):
    """``current_certificate`` of a result: the facts of the certificate in ``data`` (read from
    ``path``), whether ``key`` (None: a key about to be made) matches it, and its PEM."""
    cert = cx509.load_certificate(data, option=option)
    facts = cx509.cert_facts(cert)
    facts['path'] = path
    facts['pem'] = cx509.to_pem(cert)
    facts['key_matches'] = cx509.key_matches_cert(key, cert) if key is not None else False
    return facts


def note_deployed(deployed):
    """After a deploy wrote certificates: ``deployed`` lists ``(certificate_path, key_path,
    certificate_pem)``.  The results kept by the certificate_request calls that read those files
    are brought up to date (request_cache), so the next no-op needs no parsing either.  Never
    raises."""
    def facts_of(certificate_path, key_path, certificate_pem):
        def facts():
            with open(certificate_path, 'rb') as handle:
                data = handle.read()
            with open(key_path, 'rb') as handle:
                key = cx509.load_private_key(handle.read(), passphrase=None, option='key_path')
            written = cx509.load_certificate(data, option='certificate_path')
            deployed = cx509.load_certificate(certificate_pem.encode('ascii'), option='certificate')
            if cx509.to_pem(written) != cx509.to_pem(deployed):
                return None
            return certificate_in_use(os.path.abspath(certificate_path), data, key)
        return facts

    request_cache.note_certificates([(path, key, facts_of(path, key, pem)) for path, key, pem in deployed])


# ----------------------------------------------------------------------------- the module's work

class Directory:
    """O(directory): made when missing (parents too), owner, group and mode set like
    ``ansible.builtin.file state=directory``; planned before anything is written."""

    def __init__(self, params, check_mode):
        self.check_mode = check_mode
        self.path = os.path.abspath(params['directory'])
        self.uid = cfiles.resolve_uid(params.get('owner'), option='owner')
        self.gid = cfiles.resolve_gid(params.get('group'), option='group')
        self.mode = cfiles.parse_mode(params.get('directory_mode'), option='directory_mode')
        self.reasons = []
        self.fix = {}
        try:
            st = os.stat(self.path)
        except OSError:
            st = None
            if os.path.lexists(self.path):
                raise ConfigError('%s is a dangling symbolic link' % self.path, option='directory',
                                  fix='give a directory path (made when missing), not a link to nothing')
        if st is None:
            self.reasons.append('directory_created')
            return
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError('%s exists and is not a directory' % self.path, option='directory',
                              fix='give a directory path (made when missing), not a file')
        if self.mode is not None and stat.S_IMODE(st.st_mode) != self.mode:
            self.fix['mode'] = self.mode
            self.reasons.append('directory_mode_changed')
        if self.uid is not None and st.st_uid != self.uid:
            self.fix['uid'] = self.uid
            self.reasons.append('directory_owner_changed')
        if self.gid is not None and st.st_gid != self.gid:
            self.fix['gid'] = self.gid
            self.reasons.append('directory_group_changed')

    @property
    def made(self):
        return ('directory_created' in self.reasons) and not self.check_mode

    def apply(self):
        if self.check_mode or not self.reasons:
            return
        try:
            if 'directory_created' in self.reasons:
                os.makedirs(self.path, exist_ok=True)
                self.fix = {'mode': self.mode if self.mode is not None else 0o755}
                if self.uid is not None:
                    self.fix['uid'] = self.uid
                if self.gid is not None:
                    self.fix['gid'] = self.gid
            if 'uid' in self.fix or 'gid' in self.fix:
                os.chown(self.path, self.fix.get('uid', -1), self.fix.get('gid', -1))
            if 'mode' in self.fix:
                os.chmod(self.path, self.fix['mode'])
        except OSError as exc:
            raise ConfigError('cannot make %s or set its owner, group or mode (%s)' % (self.path, exc.strerror or exc),
                              option='directory', fix='run the task with become, or give a directory it may write')

    def result(self):
        return {'path': self.path, 'changed': bool(self.reasons), 'changed_reasons': list(self.reasons)}


def run(params, check_mode=False, diff=False, warn=None):
    """Plan every request (raising ConfigError before anything is written), then apply them
    in order.  Returns the module result."""
    if params.get('refuse'):
        raise ConfigError('; '.join(params['refuse']))
    cx509.require_cryptography()
    directory = Directory(params, check_mode) if params.get('directory') else None
    made_dirs = (directory.path,) if directory is not None and directory.made else ()
    batch = params.get('requests')
    if batch:
        entries = [(index, merge_request(params, entry)) for index, entry in enumerate(batch)]
    else:
        entries = [(None, merge_request(params, {}))]
    plans = []
    seen = {}
    for index, merged in entries:
        req = KeyRequest(merged, index=index, check_mode=check_mode, warn=warn, made_dirs=made_dirs)
        for name in ('privatekey_path', 'csr_path'):
            path = merged.get(name)
            if not path:
                continue
            path = os.path.abspath(path)
            if path in seen:
                raise ConfigError('%s is used by more than one request (also %s)' % (path, seen[path]),
                                  option=req.opt(name), fix='give every request its own key and CSR files')
            seen[path] = req.opt(name)
        plans.append(req.plan())
    if directory is not None:
        directory.apply()
    for position, req in enumerate(plans):
        try:
            req.apply()
        except ConfigError as exc:
            if batch and position:
                exc.details = dict(exc.details, completed=[r.key_path for r in plans[:position]])
            raise
    results = [req.result(diff=diff) for req in plans]
    if batch:
        out = {'changed': any(r['changed'] for r in results), 'results': results}
        if diff:
            out['diff'] = [r.pop('diff') for r in results]
    else:
        out = results[0]
    if directory is not None:
        out['directory'] = directory.result()
        out['changed'] = out['changed'] or out['directory']['changed']
    return out


def execute(ctx):
    warned = []

    def warn(msg):
        warned.append(msg)
        ctx.warn(msg)

    result = run(ctx.params, check_mode=ctx.check_mode, diff=ctx.diff, warn=warn)
    if not warned:
        request_cache.remember(ctx.params, result, check_mode=ctx.check_mode, diff=ctx.diff)
    return result
