# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A certificate authority kept in a directory on the controller, and its issuer connector.

Layout of a CA directory::

    ca.crt        the CA certificate (PEM)
    ca.key        its private key (PEM, 0600 from the first byte, optionally encrypted)
    chain.pem     the CA's own issuers, nearest first (empty for a root)
    ca.json       metadata: kind, parent, CRL number
    records/      one JSON record per issued serial: name, token, profile, SANs, dates,
                  revocation, replaces / superseded_by
    certs/        one PEM per issued serial
    tokens/       order token -> serial (the CA signs once per token)
    revoked.json  the revoked serials (what the CRL lists)
    index.json    the records of CAs made by earlier versions (read, never rewritten)
    .lock         flock() target: parallel forks sign and revoke one at a time

Every signature, revocation and lookup touches a few small files, so the cost stays the same
however many certificates the CA has issued.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import json
import os
import re

from ansible_collections.certforge.pki.plugins.module_utils.core import files
from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, PolicyError
from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import IssuerConnector, hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.core.model import (
    ORDER_ISSUED, Order, REVOCATION_REASONS, reason_code)

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

CA_CERT = 'ca.crt'
CA_KEY = 'ca.key'
CA_CHAIN = 'chain.pem'
CA_META = 'ca.json'
CA_INDEX = 'index.json'
CA_RECORDS = 'records'         # one JSON record per issued serial
CA_TOKENS = 'tokens'           # order token -> serial
CA_REVOKED = 'revoked.json'    # revoked serials -> revocation facts
#: Names a CA directory may hold besides its certificate and key.
CA_FILES = ('ca.crt', 'ca.key', 'chain.pem', 'ca.json', 'index.json', 'records', 'certs', 'tokens',
            'revoked.json', '.lock')
CA_CERTS = 'certs'             # one PEM per issued serial

#: Issuance profiles: key usage, extended key usage, whether wildcards and which SAN types
#: are allowed.  RSA keys also get keyEncipherment where the profile wants it.
PROFILES = {
    'tls_server': dict(key_usage=['digital_signature'], rsa_key_usage=['key_encipherment'],
                       extended_key_usage=['serverAuth'], wildcards=True,
                       san_types=('DNS', 'IP'), need_san=True),
    'tls_client': dict(key_usage=['digital_signature'], rsa_key_usage=['key_encipherment'],
                       extended_key_usage=['clientAuth'], wildcards=False,
                       san_types=('DNS', 'IP', 'email', 'URI'), need_san=False),
    'email': dict(key_usage=['digital_signature', 'content_commitment'],
                  rsa_key_usage=['key_encipherment'],
                  extended_key_usage=['emailProtection'], wildcards=False,
                  san_types=('email',), need_san=True),
    'code_signing': dict(key_usage=['digital_signature'], rsa_key_usage=[],
                         extended_key_usage=['codeSigning'], wildcards=False,
                         san_types=('DNS', 'URI', 'email'), need_san=False),
}

KEY_TYPES = ('ECDSA', 'RSA', 'Ed25519')


def _c():
    """cryptography, imported only on the paths that sign or parse."""
    return cx509.require_cryptography()


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _iso(dt):
    return dt.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


# ----------------------------------------------------------------------------- file helpers

def _write_private(path, data):
    """A secret file: 0600 from its first byte, written atomically."""
    files.atomic_write(path, data, mode=0o600)


def _write_public(path, data, mode=0o644):
    files.atomic_write(path, data, mode=mode)


def _read(path, option):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except (IOError, OSError) as exc:
        raise ConfigError('cannot read %s: %s' % (path, exc.strerror or exc), option=option,
                          fix='check the path and its permissions')


# ----------------------------------------------------------------------------- keys

def _random_serial():
    return int.from_bytes(os.urandom(20), 'big') >> 1 or 1


def _key_usage(names):
    x509 = _c().x509
    flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                 data_encipherment=False, key_agreement=False, key_cert_sign=False,
                 crl_sign=False, encipher_only=False, decipher_only=False)
    for n in names:
        flags[n] = True
    return x509.KeyUsage(**flags)


def _eku(names):
    lib = _c()
    x509, EKU = lib.x509, lib.oid.ExtendedKeyUsageOID
    oids = {'serverAuth': EKU.SERVER_AUTH, 'clientAuth': EKU.CLIENT_AUTH,
            'codeSigning': EKU.CODE_SIGNING, 'emailProtection': EKU.EMAIL_PROTECTION}
    return x509.ExtendedKeyUsage([oids[n] for n in names])


# ----------------------------------------------------------------------------- the CA

class LocalCA:
    """A CA directory.  ``load()`` checks that key and certificate belong together and that
    the certificate is a CA that may sign certificates."""

    def __init__(self, path, passphrase=None, option='ca_path', passphrase_option=None):
        self.path = path
        self.passphrase = passphrase
        self.option = option
        # the passphrase option that goes with the path option: ca_path -> ca_passphrase,
        # path -> passphrase, parent_path -> parent_passphrase
        self.passphrase_option = passphrase_option or (
            option[:-len('path')] + 'passphrase' if option.endswith('path') else 'passphrase')
        self.cert = None
        self.key = None
        self.chain = []          # PEM strings, nearest issuer first

    # -- paths
    def p(self, name):
        return os.path.join(self.path, name)

    def exists(self):
        return os.path.exists(self.p(CA_CERT)) and os.path.exists(self.p(CA_KEY))

    # -- loading
    def load(self, need_key=True):
        if os.path.lexists(self.path) and not os.path.isdir(self.path):
            raise ConfigError('%s is not a CA directory (it is a file or a dangling link)' % self.path,
                              option=self.option, fix='give the directory made by certforge.pki.local_ca')
        if not os.path.isdir(self.path):
            raise ConfigError('CA directory %s does not exist' % self.path, option=self.option,
                              fix='create the CA first with certforge.pki.local_ca')
        if not os.path.exists(self.p(CA_CERT)):
            raise ConfigError('%s has no %s' % (self.path, CA_CERT), option=self.option,
                              fix='point at a directory made by certforge.pki.local_ca')
        self.cert = cx509.load_certificate(_read(self.p(CA_CERT), self.option), option=self.option)
        check_is_ca(self.cert, self.option)
        if os.path.exists(self.p(CA_CHAIN)):
            self.chain = cx509.split_pem(_read(self.p(CA_CHAIN), self.option))
        if need_key:
            if not os.path.exists(self.p(CA_KEY)):
                raise ConfigError('%s has no %s' % (self.path, CA_KEY), option=self.option,
                                  fix='point at a directory made by certforge.pki.local_ca, or restore its key')
            self.key = cx509.load_private_key(
                _read(self.p(CA_KEY), self.option), passphrase=self.passphrase,
                option=self.passphrase_option if self.passphrase else self.option,
                passphrase_option=self.passphrase_option)
            if not cx509.key_matches_cert(self.key, self.cert):
                raise ConfigError('the CA key in %s does not match the CA certificate' % self.path,
                                  option=self.option, fix='restore the matching ca.key and ca.crt pair')
        return self

    @property
    def cert_pem(self):
        return cx509.to_pem(self.cert)

    def chain_pems(self):
        """The chain a leaf needs: this CA first, then its issuers (root last)."""
        return [self.cert_pem] + list(self.chain)

    def meta(self):
        try:
            with open(self.p(CA_META)) as f:
                return json.load(f)
        except (IOError, OSError, ValueError):
            return {}

    def save_meta(self, meta):
        _write_public(self.p(CA_META), json.dumps(meta, indent=2, sort_keys=True).encode('utf-8'), 0o600)

    # -- index (serial -> record), under a lock
    @contextlib.contextmanager
    def locked(self):
        fd = os.open(self.p('.lock'), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def legacy_index(self):
        """The ``index.json`` of a CA made by an earlier version (read once, never rewritten)."""
        cached = getattr(self, '_legacy', None)
        if cached is not None:
            return cached
        try:
            with open(self.p(CA_INDEX)) as f:
                self._legacy = json.load(f)
        except (IOError, OSError):
            self._legacy = {}
        except ValueError:
            raise ConfigError('%s is not valid JSON' % self.p(CA_INDEX), option=self.option,
                              fix='restore index.json from a backup')
        return self._legacy

    def _record_path(self, serial):
        return os.path.join(self.p(CA_RECORDS), '%s.json' % serial)

    def record(self, serial):
        """The record of ``serial`` (hex), or None when this CA did not issue it."""
        serial = normalize_serial(serial)
        try:
            with open(self._record_path(serial)) as handle:
                return json.load(handle)
        except (IOError, OSError):
            return self.legacy_index().get(serial)
        except ValueError:
            raise ConfigError('the record of serial %s in %s is not valid JSON' % (serial, self.path),
                              option=self.option, fix='restore %s from a backup' % self._record_path(serial))

    def _save_record(self, record):
        directory = self.p(CA_RECORDS)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        _write_public(self._record_path(record['serial']),
                      json.dumps(record, indent=1, sort_keys=True).encode('utf-8'), 0o600)

    def _token_path(self, token):
        if not re.match(r'^[A-Za-z0-9._-]{1,128}$', str(token)):
            return None
        return os.path.join(self.p(CA_TOKENS), str(token))

    def token_serials(self, token):
        """Serials signed for ``token``, oldest first."""
        path = self._token_path(token)
        serials = []
        if path:
            try:
                with open(path) as handle:
                    serials = [line.strip() for line in handle if line.strip()]
            except (IOError, OSError):
                serials = []
        legacy = sorted((r for r in self.legacy_index().values() if r.get('token') == token),
                        key=lambda r: r.get('issued_at', ''))
        return [r['serial'] for r in legacy if r['serial'] not in serials] + serials

    def _add_token(self, token, serial):
        path = self._token_path(token)
        if not path:
            return
        if not os.path.isdir(self.p(CA_TOKENS)):
            os.makedirs(self.p(CA_TOKENS), 0o700)
        serials = self.token_serials(token) + [serial]
        _write_public(path, ('\n'.join(serials) + '\n').encode('ascii'), 0o600)

    def revoked(self):
        """``{serial: record}`` of every revoked certificate (what the CRL lists)."""
        out = dict((s, r) for s, r in self.legacy_index().items() if r.get('status') == 'revoked')
        try:
            with open(self.p(CA_REVOKED)) as handle:
                out.update(json.load(handle))
        except (IOError, OSError):
            pass
        except ValueError:
            raise ConfigError('%s is not valid JSON' % self.p(CA_REVOKED), option=self.option,
                              fix='restore revoked.json from a backup')
        return out

    def index(self):
        """Every record, by serial (reads them all: for reports and tests, not for signing)."""
        out = dict(self.legacy_index())
        directory = self.p(CA_RECORDS)
        for name in (os.listdir(directory) if os.path.isdir(directory) else []):
            if name.endswith('.json'):
                record = self.record(name[:-5])
                if record:
                    out[record['serial']] = record
        return out

    # -- signing
    def sign(self, csr_pem, profile='tls_server', validity_days=90, max_ttl_days=397,
             allowed_domains=None, allow_wildcards=None, name=None, token=None, now=None,
             warn=None, replaces=None):
        """Sign a CSR; returns (cert, record).  Policy problems raise PolicyError and nothing
        is recorded.

        CA-side idempotency: a ``token`` the CA has already signed for (a valid record) returns
        that certificate again instead of signing another, decided under the CA lock, so two
        controllers that share the CA but not an order store still sign once.  ``replaces`` (a
        hex serial) is recorded, and the replaced record notes ``superseded_by``."""
        lib = _c()
        x509, rsa = lib.x509, lib.rsa
        warn = warn or (lambda msg: None)
        csr, sans = check_request(csr_pem, profile, validity_days, allowed_domains, allow_wildcards)
        prof = PROFILES[profile]
        now = now or utcnow()
        if max_ttl_days and validity_days > max_ttl_days:
            warn('validity_days %s is above max_ttl_days %s: capped to %s days'
                 % (validity_days, max_ttl_days, max_ttl_days))
            validity_days = max_ttl_days
        not_before = now - datetime.timedelta(minutes=5)
        not_after = now + datetime.timedelta(days=validity_days)
        if not_after > cx509.not_after(self.cert):
            warn('the certificate would outlive its CA (%s): not_after capped to the CA expiry'
                 % _iso(cx509.not_after(self.cert)))
            not_after = cx509.not_after(self.cert)

        pub = csr.public_key()
        usages = list(prof['key_usage'])
        if isinstance(pub, rsa.RSAPublicKey):
            usages += prof['rsa_key_usage']
        builder = (x509.CertificateBuilder()
                   .subject_name(csr.subject)
                   .issuer_name(self.cert.subject)
                   .public_key(pub)
                   .serial_number(_random_serial())
                   .not_valid_before(not_before)
                   .not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(_key_usage(usages), critical=True)
                   .add_extension(_eku(prof['extended_key_usage']), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.cert.public_key()), critical=False))
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(cx509.parse_san(sans, option='csr')),
                critical=not csr.subject)
        with self.locked():
            if token:
                for serial in self.token_serials(token):
                    pem = self.certificate_pem(serial)
                    if not pem:
                        continue           # killed before the certificate was kept: never issued
                    earlier = self.record(serial)
                    if earlier is None:    # killed between the certificate and its record
                        earlier = self._record_of(cx509.load_certificate(pem, option=self.option),
                                                  name, token, profile, now)
                        self._save_record(earlier)
                    if earlier.get('status') == 'valid':
                        return cx509.load_certificate(pem, option=self.option), earlier
            cert = builder.sign(self.key, cx509.hash_for_key(self.key))
            serial = cx509.serial_hex(cert)
            record = self._record_of(cert, name, token, profile, now)
            # the order of the writes makes a kill at any point safe: the token names the serial
            # first, the kept certificate is what counts as issued, the record follows
            if token:
                self._add_token(token, serial)
            self._save_certificate(serial, cx509.to_pem(cert))
            self._save_record(record)
            if replaces:
                replaces = normalize_serial(replaces)
                old = self.record(replaces)
                if old is not None:
                    record['replaces'] = replaces
                    self._save_record(record)
                    old['superseded_by'] = serial
                    self._save_record(old)
        return cert, record

    @staticmethod
    def _record_of(cert, name, token, profile, now):
        return dict(serial=cx509.serial_hex(cert), name=name, token=token, profile=profile,
                    subject=cert.subject.rfc4514_string(), subject_alt_names=cx509.san_list(cert),
                    not_before=_iso(cx509.not_before(cert)), not_after=_iso(cx509.not_after(cert)),
                    issued_at=_iso(now), status='valid')

    def _save_certificate(self, serial, pem):
        directory = self.p(CA_CERTS)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        _write_public(os.path.join(directory, '%s.pem' % serial), pem.encode('ascii'), 0o644)

    def certificate_pem(self, serial):
        """PEM of a certificate this CA issued (kept under certs/), or None."""
        path = os.path.join(self.p(CA_CERTS), '%s.pem' % normalize_serial(serial))
        try:
            with open(path) as handle:
                return handle.read()
        except (IOError, OSError):
            return None

    def revoke(self, serial, reason='unspecified', now=None):
        """Record a revocation; returns (changed, record)."""
        serial = normalize_serial(serial)
        try:
            code = reason_code(reason)
        except ValueError:
            raise ConfigError('unknown revocation reason %r' % (reason,), option='revocation_reason',
                              fix='use one of %s' % ', '.join(r for r in REVOCATION_REASONS if r))
        with self.locked():
            record = self.record(serial)
            if record is None:
                raise ConfigError('serial %s was not issued by the CA in %s' % (serial, self.path),
                                  option='serial', fix='give the serial of a certificate this CA issued')
            if record.get('status') == 'revoked':
                return False, record
            record.update(status='revoked', revoked_at=_iso(now or utcnow()),
                          reason=REVOCATION_REASONS[code], reason_code=code)
            self._save_record(record)
            revoked = self.revoked()
            revoked[serial] = dict((k, record.get(k)) for k in (
                'serial', 'status', 'revoked_at', 'reason', 'reason_code', 'name'))
            _write_public(self.p(CA_REVOKED), json.dumps(revoked, indent=1, sort_keys=True).encode('utf-8'),
                          0o600)
        return True, record

    def find(self, name=None, token=None):
        """Records signed for ``token`` (cheap), or else for ``name`` (reads every record)."""
        if token:
            out = []
            for serial in self.token_serials(token):
                record = self.record(serial)
                pem = self.certificate_pem(serial)
                if record is None and pem:          # killed between certificate and record
                    record = self._record_of(cx509.load_certificate(pem, option=self.option),
                                             None, token, None, utcnow())
                if record is not None and pem:
                    out.append(record)
            return out
        out = [r for r in self.index().values() if name and r.get('name') == name]
        return sorted(out, key=lambda r: r.get('issued_at', ''))


def check_request(csr_pem, profile, validity_days, allowed_domains=None, allow_wildcards=None):
    """Everything that can refuse a request, with no side effect: returns (csr, sans)."""
    if profile not in PROFILES:
        raise ConfigError('unknown profile %r' % (profile,), option='profile',
                          fix='use one of %s' % ', '.join(sorted(PROFILES)))
    if validity_days is None or validity_days <= 0:
        raise ConfigError('must be a positive number of days', option='validity_days',
                          fix='e.g. validity_days: 90')
    csr = cx509.load_csr(csr_pem, option='csr')
    cx509.verify_csr_signature(csr, option='csr')
    check_csr_key(csr)
    sans = cx509.san_list(csr)
    check_sans(sans, PROFILES[profile], profile, allowed_domains, allow_wildcards)
    return csr, sans


MIN_RSA_BITS = 2048


def check_csr_key(csr):
    """The local CA signs no RSA key under 2048 bits (NIST SP 800-131A, CA/B Forum)."""
    rsa = _c().rsa
    pub = csr.public_key()
    if isinstance(pub, rsa.RSAPublicKey) and pub.key_size < MIN_RSA_BITS:
        raise PolicyError('the CSR has an RSA key of %d bits; the local CA signs RSA keys of at least %d bits'
                          % (pub.key_size, MIN_RSA_BITS), option='csr',
                          fix='make the key again with privatekey_size: 2048 (or 3072/4096), or use ECDSA')


def normalize_serial(serial):
    text = str(serial).replace(':', '').replace(' ', '').upper()
    if text.startswith('0X'):
        text = text[2:]
    try:
        value = int(text, 16)
    except ValueError:
        raise ConfigError('%r is not a hexadecimal serial' % (serial,), option='serial',
                          fix='give the serial as hex, e.g. 4F:1A:... or 4F1A...')
    text = '%X' % value
    return text if len(text) % 2 == 0 else '0' + text


def load_ca_key(data, passphrase, option):
    return cx509.load_private_key(data, passphrase=passphrase, option=option)


def check_is_ca(cert, option):
    x509 = _c().x509
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise ConfigError('the certificate %s is not a CA certificate (no basicConstraints CA:TRUE)'
                          % cert.subject.rfc4514_string(), option=option,
                          fix='use a CA certificate with CA:TRUE and keyCertSign')
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.key_cert_sign:
            raise ConfigError('the CA certificate %s may not sign certificates (no keyCertSign)'
                              % cert.subject.rfc4514_string(), option=option,
                              fix='use a CA certificate whose key usage includes keyCertSign')
    except x509.ExtensionNotFound:
        pass


def _domain_allowed(name, allowed):
    name = name.lower().rstrip('.')
    for dom in allowed:
        dom = dom.lower().lstrip('*').lstrip('.').rstrip('.')
        if name == dom or name.endswith('.' + dom):
            return True
    return False


def _is_ip_text(value):
    import ipaddress
    try:
        ipaddress.ip_address(value.strip('[]'))
        return True
    except ValueError:
        return False


def check_sans(sans, prof, profile, allowed_domains, allow_wildcards):
    """Policy: SAN types the profile allows, wildcards, allowed domains."""
    if prof['need_san'] and not sans:
        raise PolicyError('the CSR has no subjectAltName, which profile %s needs' % profile,
                          option='csr', fix='add subject_alt_names to the request')
    wildcards = prof['wildcards'] if allow_wildcards is None else (allow_wildcards and prof['wildcards'])
    for san in sans:
        kind, value = san.split(':', 1) if ':' in san else ('DNS', san)
        if kind == 'DNS' and _is_ip_text(value):
            raise PolicyError('%s puts an IP address in a DNS name' % san, option='subject_alt_names',
                              fix='request it as IP:%s' % value)
        if kind not in prof['san_types']:
            raise PolicyError('%s is not allowed by profile %s (allowed: %s)'
                              % (san, profile, ', '.join(prof['san_types'])),
                              option='subject_alt_names', fix='remove it or use another profile')
        if kind == 'DNS' and '*' in value:
            if not wildcards:
                raise PolicyError('wildcard %s is not allowed by profile %s' % (value, profile),
                                  option='subject_alt_names',
                                  fix='list each name instead of a wildcard, or use a profile that allows wildcards')
            if not value.startswith('*.') or '*' in value[2:]:
                raise PolicyError('malformed wildcard %s' % value, option='subject_alt_names',
                                  fix='a wildcard may only be the whole left-most label: *.example.com')
        if allowed_domains:
            host = None
            if kind == 'DNS':
                host = value[2:] if value.startswith('*.') else value
            elif kind == 'email':
                host = value.rpartition('@')[2]
            if host is not None and not _domain_allowed(host, allowed_domains):
                raise PolicyError('%s is outside the allowed domains (%s)'
                                  % (san, ', '.join(allowed_domains)),
                                  option='subject_alt_names',
                                  fix='request names under an allowed domain, or extend allowed_domains')


# ----------------------------------------------------------------------------- CA creation

def build_ca_certificate(key, subject, issuer_cert, issuer_key, validity_days, path_length,
                         permitted=None, excluded=None, now=None):
    x509 = _c().x509
    now = now or utcnow()
    not_after = now + datetime.timedelta(days=validity_days)
    if issuer_cert is not None and not_after > cx509.not_after(issuer_cert):
        not_after = cx509.not_after(issuer_cert)
    pub = key.public_key()
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
               .public_key(pub)
               .serial_number(_random_serial())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
               .add_extension(_key_usage(['digital_signature', 'key_cert_sign', 'crl_sign']), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False))
    signer_pub = issuer_cert.public_key() if issuer_cert is not None else pub
    builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_pub),
                                    critical=False)
    if permitted or excluded:
        builder = builder.add_extension(x509.NameConstraints(
            permitted_subtrees=cx509.parse_san(permitted, option='name_constraints_permitted') or None,
            excluded_subtrees=cx509.parse_san(excluded, option='name_constraints_excluded') or None),
            critical=True)
    signer = issuer_key if issuer_key is not None else key
    return builder.sign(signer, cx509.hash_for_key(signer))


def _subject(params, option='subject'):
    subject = dict(params.get('subject') or {})
    if params.get('common_name'):
        subject['commonName'] = params['common_name']
    if not subject:
        raise ConfigError('a CA needs a subject', option='common_name',
                          fix='set common_name (and optionally subject)')
    return cx509.dict_to_name(subject, option=option)


def ensure_ca(params, check_mode=False, warn=None):
    """Create or load the CA described by ``params`` (the local_ca module's options).

    Returns a result dict: changed, changed_reasons, certificate, chain, subject, serial,
    not_after, path.  An existing CA is never replaced unless ``force``; when it differs from
    the options a warning says so.
    """
    warn = warn or (lambda msg: None)
    path = os.path.expanduser(params['path'])
    kind = params.get('type') or 'root'
    ca = LocalCA(path, params.get('passphrase'), option='path')
    reasons = []
    check_ca_dir(path, 'path')
    if ca.exists() and not params.get('force'):
        ca.load(need_key=True)
        want = _subject(params) if (params.get('common_name') or params.get('subject')) else None
        if want is not None and want != ca.cert.subject:
            warn('the CA in %s has subject %s, not %s; it is left alone (force: true replaces it)'
                 % (path, ca.cert.subject.rfc4514_string(), want.rfc4514_string()))
        return _ca_result(ca, False, [])

    parent_dir = os.path.dirname(path.rstrip('/')) or '.'
    if not os.path.isdir(parent_dir):
        raise ConfigError('the parent directory %s does not exist' % parent_dir, option='path',
                          fix='create %s first' % parent_dir)
    if kind == 'import':
        reasons.append('imported')
        cert_data = _read(os.path.expanduser(params['certificate_path'] or ''), 'certificate_path')
        key_data = _read(os.path.expanduser(params['privatekey_path'] or ''), 'privatekey_path')
        cert = cx509.load_certificate(cert_data, option='certificate_path')
        check_is_ca(cert, 'certificate_path')
        key = cx509.load_private_key(key_data, passphrase=params.get('privatekey_passphrase'),
                                     option='privatekey_path')
        if not cx509.key_matches_cert(key, cert):
            raise ConfigError('the key in privatekey_path does not match certificate_path',
                              option='privatekey_path', fix='give the key of that CA certificate')
        chain = []
        if params.get('chain_path'):
            chain = load_chain(_read(os.path.expanduser(params['chain_path']), 'chain_path'), 'chain_path')
        if check_mode:
            return dict(changed=True, changed_reasons=reasons, path=path)
        _store_ca(path, key, cert, chain, params.get('passphrase'), {'kind': 'import'})
        return _ca_result(LocalCA(path, params.get('passphrase')).load(), True, reasons)

    subject = _subject(params)
    parent = None
    if kind == 'intermediate':
        if not params.get('parent_path'):
            raise ConfigError('an intermediate CA needs its parent', option='parent_path',
                              fix='set parent_path to the directory of the signing local CA')
        parent = LocalCA(os.path.expanduser(params['parent_path']), params.get('parent_passphrase'),
                         option='parent_path').load()
        if os.path.realpath(parent.path) == os.path.realpath(path):
            raise ConfigError('the parent CA is the CA itself', option='parent_path',
                              fix='give the directory of another local CA')
    elif kind != 'root':
        raise ConfigError('unknown type %r' % (kind,), option='type', fix='use root, intermediate or import')
    reasons.append('created' if not ca.exists() else 'forced')
    if check_mode:
        return dict(changed=True, changed_reasons=reasons, path=path, subject=subject.rfc4514_string())
    key = cx509.generate_private_key(params.get('key_type') or 'ECDSA', params.get('key_size') or 3072,
                                     params.get('key_curve') or 'secp384r1', type_option='key_type',
                                     size_option='key_size', curve_option='key_curve')
    validity = params.get('validity_days') or (3650 if kind == 'root' else 1825)
    path_length = params.get('path_length')
    if path_length is None and kind == 'intermediate':
        path_length = 0
    cert = build_ca_certificate(
        key, subject, parent.cert if parent else None, parent.key if parent else None, validity,
        path_length, params.get('name_constraints_permitted'), params.get('name_constraints_excluded'))
    chain = parent.chain_pems() if parent else []
    _store_ca(path, key, cert, chain, params.get('passphrase'),
              {'kind': kind, 'parent': parent.path if parent else None})
    return _ca_result(LocalCA(path, params.get('passphrase')).load(), True, reasons)


def check_ca_dir(path, option):
    """The directory of a CA to create or load: not empty, not a file, not a dangling link,
    in an existing parent directory."""
    if not path or not path.strip():
        raise ConfigError('is empty', option=option, fix='give the directory of the CA')
    if os.path.islink(path) and not os.path.exists(path):
        raise ConfigError('%s is a dangling symbolic link' % path, option=option,
                          fix='remove the link or point it to a directory')
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError('%s exists and is not a directory' % path, option=option,
                          fix='give a directory path for the CA (it is created when missing)')
    strangers = [n for n in (os.listdir(path) if os.path.isdir(path) else [])
                 if n not in CA_FILES
                 and not n.endswith('.certforge-tmp')]
    if strangers and not os.path.exists(os.path.join(path, CA_CERT)):
        raise ConfigError('%s is not empty and holds no CA (no %s)' % (path, CA_CERT), option=option,
                          fix='give an empty or missing directory, or the directory of an existing local CA')


def load_chain(data, option):
    """The certificates of a chain file, each checked to be a CA certificate; anything else in
    the file (garbage, keys, CSRs) is refused."""
    blocks = cx509.pem_labels(data)
    if not blocks:
        raise ConfigError('holds no PEM certificate', option=option,
                          fix='give a PEM file of the CA certificates above this CA, nearest first')
    if any(label != 'CERTIFICATE' for label in blocks):
        raise ConfigError('holds %s; a chain holds only certificates' % cx509.describe_pem(data),
                          option=option, fix='give a PEM file of CA certificates only')
    text = data.decode('utf-8', 'replace') if isinstance(data, bytes) else data
    outside = re.sub(r'-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----', '', text, flags=re.S).strip()
    if outside:
        raise ConfigError('holds text outside its PEM blocks', option=option,
                          fix='give a clean PEM file of CA certificates only')
    certs = cx509.load_certificates(data, option=option)
    for cert in certs:
        check_is_ca(cert, option)
    return [cx509.to_pem(c) for c in certs]


def _store_ca(path, key, cert, chain, passphrase, meta):
    if not os.path.isdir(path):
        os.mkdir(path, 0o700)
    _write_private(os.path.join(path, CA_KEY), cx509.private_key_to_pem(key, passphrase))
    _write_public(os.path.join(path, CA_CERT), cx509.to_pem(cert).encode('ascii'))
    _write_public(os.path.join(path, CA_CHAIN), ''.join(chain).encode('ascii'))
    meta = dict(meta, crl_number=0, created=_iso(utcnow()))
    _write_public(os.path.join(path, CA_META), json.dumps(meta, indent=2, sort_keys=True).encode('utf-8'), 0o600)


def _ca_result(ca, changed, reasons):
    facts = cx509.cert_facts(ca.cert)
    return dict(changed=changed, changed_reasons=reasons, path=ca.path,
                certificate=ca.cert_pem, chain=''.join(ca.chain),
                subject=facts['subject_string'], serial=facts['serial'],
                not_after=facts['not_after'], path_length=facts.get('path_length'))


# ----------------------------------------------------------------------------- CRL

def crl_next_update(crl):
    """nextUpdate of a CRL as an aware UTC datetime (any cryptography version)."""
    value = getattr(crl, 'next_update_utc', None)
    if value is None and crl.next_update is not None:
        value = crl.next_update.replace(tzinfo=datetime.timezone.utc)
    return value


def crl_status(ca, crl_path, renew_before_hours=24, now=None):
    """(needs_new, reasons) for the CRL at ``crl_path``."""
    x509 = _c().x509
    now = now or utcnow()
    if not os.path.exists(crl_path):
        return True, ['missing']
    try:
        crl = x509.load_pem_x509_crl(_read(crl_path, 'path'))
    except ValueError:
        return True, ['unreadable']
    reasons = []
    listed = set('%X' % r.serial_number for r in crl)
    listed = set(s if len(s) % 2 == 0 else '0' + s for s in listed)
    revoked = set(ca.revoked())
    if listed != revoked:
        reasons.append('revocations_changed')
    if crl.issuer != ca.cert.subject or not crl.is_signature_valid(ca.cert.public_key()):
        reasons.append('issuer_changed')
    next_update = crl_next_update(crl)
    if next_update is None or now >= next_update - datetime.timedelta(hours=renew_before_hours):
        reasons.append('next_update_near')
    return bool(reasons), reasons


def build_crl(ca, validity_days=7, now=None):
    """Sign a CRL of every recorded revocation; bumps the CRL number in ca.json."""
    x509 = _c().x509
    now = now or utcnow()
    meta = ca.meta()
    number = int(meta.get('crl_number', 0)) + 1
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.cert.subject)
               .last_update(now - datetime.timedelta(minutes=5))
               .next_update(now + datetime.timedelta(days=validity_days))
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()),
                              critical=False))
    reason_flags = {
        1: x509.ReasonFlags.key_compromise, 2: x509.ReasonFlags.ca_compromise,
        3: x509.ReasonFlags.affiliation_changed, 4: x509.ReasonFlags.superseded,
        5: x509.ReasonFlags.cessation_of_operation, 6: x509.ReasonFlags.certificate_hold,
        8: x509.ReasonFlags.remove_from_crl, 9: x509.ReasonFlags.privilege_withdrawn,
        10: x509.ReasonFlags.aa_compromise}
    for serial, record in sorted(ca.revoked().items()):
        revoked_at = datetime.datetime.strptime(record['revoked_at'], '%Y-%m-%dT%H:%M:%SZ').replace(
            tzinfo=datetime.timezone.utc)
        entry = (x509.RevokedCertificateBuilder().serial_number(int(serial, 16))
                 .revocation_date(revoked_at))
        code = record.get('reason_code') or 0
        if code in reason_flags:
            entry = entry.add_extension(x509.CRLReason(reason_flags[code]), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    crl = builder.sign(ca.key, cx509.hash_for_key(ca.key))
    meta['crl_number'] = number
    ca.save_meta(meta)
    return crl, number


# ----------------------------------------------------------------------------- connector

class LocalCAIssuer(IssuerConnector):
    """Issuer connector over a ``LocalCA`` directory.  Answers at once: ``submit`` returns an
    issued order."""

    name = 'local_ca'
    #: the CA's index can be searched by order token (see ``find_orders``)
    searchable = True
    #: ``issuer_options`` of the generic certificate module (doc fragment ``certforge.pki.issuer_options``)
    option_spec = dict(
        ca_path=dict(type='path', required=True),
        ca_passphrase=dict(type='str', no_log=True),
        profile=dict(type='str', choices=sorted(PROFILES)),
        validity_days=dict(type='int'),
        max_ttl_days=dict(type='int', default=397),
        allowed_domains=dict(type='list', elements='str'),
        allow_wildcards=dict(type='bool'),
    )

    def __init__(self, options):
        super(LocalCAIssuer, self).__init__(options)
        path = self.options.get('ca_path')
        if not path:
            raise ConfigError('issuer local_ca needs ca_path', option='issuer_options.ca_path',
                              fix='set issuer_options: {ca_path: /path/to/ca}')
        self.ca = LocalCA(os.path.expanduser(path), self.options.get('ca_passphrase'),
                          option='issuer_options.ca_path')
        self.warnings = []

    def _loaded(self, need_key=True):
        if self.ca.cert is None or (need_key and self.ca.key is None):
            self.ca.load(need_key=need_key)
        return self.ca

    def _profile(self, request):
        return request.profile or self.options.get('profile') or 'tls_server'

    def _validity(self, request):
        return request.validity_days or self.options.get('validity_days') or 90

    def check(self, request):
        """Refuse a bad request before anything is recorded (no side effect)."""
        self._loaded()
        check_request(request.csr_pem, self._profile(request), self._validity(request),
                      self.options.get('allowed_domains'), self.options.get('allow_wildcards'))

    def submit(self, request):
        ca = self._loaded()
        o = self.options
        cert, record = ca.sign(
            request.csr_pem, profile=self._profile(request),
            validity_days=self._validity(request),
            max_ttl_days=o.get('max_ttl_days', 397), allowed_domains=o.get('allowed_domains'),
            allow_wildcards=o.get('allow_wildcards'), name=request.name, token=request.token,
            warn=self.warnings.append, replaces=request.replaces_serial)
        return Order(issuer=self.name, id=record['serial'], status=ORDER_ISSUED,
                     certificate_pem=cx509.to_pem(cert), chain_pem=ca.chain_pems(),
                     details={'profile': record['profile']})

    def poll(self, order):
        return order

    def revoke(self, revocation):
        ca = self._loaded(need_key=False)
        serial = revocation.serial or revocation.order_id
        if not serial and revocation.certificate_pem:
            serial = cx509.serial_hex(cx509.load_certificate(revocation.certificate_pem))
        return ca.revoke(serial, revocation.reason or 'unspecified')

    def ca_chain(self):
        return ''.join(self._loaded(need_key=False).chain_pems())

    def issuer_subject(self):
        return self._loaded(need_key=False).cert.subject.rfc4514_string()

    def renewal_window(self, cert_pem):
        return None

    def find_orders(self, request):
        """Certificates this CA signed with the request's token (oldest first), each with its
        PEM, so a run with an empty order store returns the one already issued."""
        ca = self._loaded(need_key=False)
        if not request.token:
            return []
        out = []
        for r in ca.find(token=request.token):
            pem = ca.certificate_pem(r['serial'])
            status = ORDER_ISSUED if r.get('status') == 'valid' and pem else (
                'revoked' if r.get('status') == 'revoked' else 'failed')
            out.append(Order(issuer=self.name, id=r['serial'], status=status, certificate_pem=pem,
                             chain_pem=ca.chain_pems() if pem else [],
                             details={'profile': r.get('profile'), 'recovered': True}))
        return out

    def profile_of(self, serial):
        record = self._loaded(need_key=False).record(serial)
        return record.get('profile') if record else None


class Plugin:
    """Registers the built-in local CA issuer."""

    @hookimpl
    def certforge_issuers(self):
        return {'local_ca': LocalCAIssuer}


PLUGIN = Plugin()
