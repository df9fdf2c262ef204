# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An RFC 8555 ACME client on requests (through ``core.http``) and cryptography.

One ``AcmeClient`` per directory and account key: the directory is fetched once, nonces are
taken from every answer (a ``newNonce`` request only when none is in hand), a ``badNonce``
answer is re-signed with the fresh nonce it carries, and 429/503 answers are retried after
their ``Retry-After`` only while a deadline allows; otherwise the error carries
``retry_after`` for the caller (which returns ``pending``).  Problem documents become
``core.errors`` exceptions that name the option to fix and quote the CA's detail.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.certforge.pki.plugins.module_utils.core import http as chttp
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    AuthError, CertforgeError, ConfigError, PermanentError, PolicyError, TransientError,
)
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import jws

ACME_ERROR = 'urn:ietf:params:acme:error:'
JOSE = 'application/jose+json'
PEM_CHAIN = 'application/pem-certificate-chain'
ALL_ERRORS = frozenset(range(400, 600))
BAD_NONCE_RETRIES = 5
ZEROSSL_EAB_URL = 'https://api.zerossl.com/acme/eab-credentials-email'
#: Module option names used in errors (``core.http`` names them for TLS and timeouts).
HTTP_OPTION_NAMES = {'ca_bundle': 'acme_ca_bundle', 'validate_certs': 'validate_certs',
                     'timeout': 'acme_timeout', 'proxy': 'acme_proxy'}
#: problem type -> (error class, option, fix)
PROBLEMS = {
    'externalAccountRequired': (ConfigError, 'eab_kid',
                                'this CA needs an external account binding: set eab_kid and '
                                'eab_hmac_key (from the CA), or eab_lookup_email where the CA offers it'),
    'rejectedIdentifier': (PolicyError, 'csr', 'the CA will not issue for this name; remove it from the CSR'),
    'unsupportedIdentifier': (PolicyError, 'csr', 'remove the identifier type the CA does not support'),
    'caa': (PolicyError, 'csr', 'a CAA record forbids this CA for the name; add the CA to the CAA record'),
    'badCSR': (ConfigError, 'csr', 'make a CSR the CA accepts (key type and size, names)'),
    'invalidProfile': (ConfigError, 'profile', 'use a profile the CA offers (directory meta.profiles)'),
    'badRevocationReason': (ConfigError, 'reason', 'use a reason the CA accepts'),
    'accountDoesNotExist': (AuthError, 'account_key_path',
                            'create the account first (certforge.pki.acme_account) or set terms_agreed'),
    'userActionRequired': (ConfigError, 'terms_agreed',
                           'read the CA\'s terms of service (instance URL) and agree to them'),
    'unauthorized': (AuthError, 'account_key_path', 'the account may not do this; check the account key'),
    'badPublicKey': (ConfigError, 'account_key_path', 'use an ECDSA P-256/P-384 or RSA 2048+ key'),
    'badSignatureAlgorithm': (ConfigError, 'account_key_path', 'use an ECDSA P-256/P-384 or RSA 2048+ key'),
    'rateLimited': (TransientError, None,
                    'the CA rate-limits this account or name; run again after the Retry-After time'),
    'badNonce': (TransientError, None, 'run again'),
    'serverInternal': (TransientError, None, 'the CA failed; run again later'),
}


def problem_type(data):
    kind = (data or {}).get('type') or ''
    return kind[len(ACME_ERROR):] if kind.startswith(ACME_ERROR) else kind


def problem_error(data, status, url, retry_after=None, option=None, fix=None):
    """The ``core.errors`` exception for an ACME problem document ``data`` (dict or None)."""
    data = data if isinstance(data, dict) else {}
    kind = problem_type(data)
    parts = [data.get('detail') or data.get('title') or 'HTTP %s' % status]
    for sub in data.get('subproblems') or []:
        if isinstance(sub, dict):
            ident = (sub.get('identifier') or {}).get('value')
            parts.append('%s%s' % ('%s: ' % ident if ident else '', sub.get('detail') or sub.get('type')))
    msg = 'the ACME server refused %s (HTTP %s, %s): %s' % (
        chttp.safe_url(url), status, kind or 'no problem type', '; '.join(str(p) for p in parts))
    cls, default_option, default_fix = PROBLEMS.get(kind, (None, None, None))
    if cls is None:
        if status == 429 or status >= 500:
            cls, default_fix = TransientError, 'the CA is busy or failing; run again later'
        elif status in (401, 403):
            cls, default_option, default_fix = AuthError, 'account_key_path', 'check the account key'
        elif status in (404, 405, 410):
            cls, default_option = PermanentError, 'acme_directory'
            default_fix = ('the ACME server has no such resource: check that acme_directory is the CA\'s '
                           'directory URL (it usually ends in /directory)')
        else:
            cls, default_option = PermanentError, 'acme_directory'
            default_fix = 'the CA refused the request for good; read the problem type and detail above'
    details = {'type': data.get('type'), 'detail': data.get('detail'), 'status': status,
               'url': chttp.safe_url(url)}
    if data.get('subproblems'):
        details['subproblems'] = data['subproblems']
    if data.get('instance'):
        details['instance'] = data['instance']
    kwargs = dict(option=option or default_option, fix=fix or default_fix, details=details)
    if cls is TransientError:
        details['retry_after'] = retry_after
        error = TransientError(msg, retry_after=retry_after, **kwargs)
    else:
        error = cls(msg, **kwargs)
    error.acme_type = kind
    return error


def parse_links(response):
    """{rel: [url, ...]} from every Link header of ``response`` (relative URLs resolved)."""
    raw = []
    headers = getattr(getattr(response, 'raw', None), 'headers', None)
    if headers is not None and hasattr(headers, 'getlist'):
        raw = headers.getlist('Link')
    if not raw and response.headers.get('Link'):
        raw = [response.headers['Link']]
    links = {}
    for value in raw:
        for match in re.finditer(r'<([^>]*)>((?:\s*;\s*[^;,]+)*)', value):
            url, params = match.group(1), match.group(2)
            rel = re.search(r'rel\s*=\s*"?([^";,]+)"?', params)
            if rel:
                from urllib.parse import urljoin
                links.setdefault(rel.group(1).strip(), []).append(urljoin(response.url, url))
    return links


def split_chain(pem_text):
    blocks = re.findall(r'-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----', pem_text or '', re.S)
    return [b + '\n' for b in blocks]


def chain_matches(chain_pems, name):
    """True when the top certificate's issuer CN (or any certificate's issuer CN) is ``name``."""
    from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
    lib = cx509.require_cryptography()
    cns = []
    for pem in chain_pems:
        cert = cx509.load_certificate(pem, option='preferred_chain')
        attrs = cert.issuer.get_attributes_for_oid(lib.oid.NameOID.COMMON_NAME)
        cns.append(attrs[0].value if attrs else None)
    if not cns:
        return False
    return cns[-1] == name or name in cns


def ari_cert_id(cert_pem):
    """RFC 9773 certID: base64url(AKI keyIdentifier) '.' base64url(serial DER content)."""
    from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
    lib = cx509.require_cryptography()
    cert = cx509.load_certificate(cert_pem, option='certificate')
    try:
        aki = cert.extensions.get_extension_for_class(lib.x509.AuthorityKeyIdentifier).value
    except lib.x509.ExtensionNotFound:
        aki = None
    if aki is None or not aki.key_identifier:
        raise ConfigError('the certificate has no authority key identifier; ARI cannot name it',
                          option='renewal_info', fix='set renewal_info: false for this CA')
    serial = cert.serial_number
    length = serial.bit_length() // 8 + 1      # DER INTEGER content: a leading 0 keeps it positive
    return '%s.%s' % (jws.b64u(aki.key_identifier), jws.b64u(serial.to_bytes(length, 'big')))


class AcmeClient:
    """ACME client for one directory URL and one account key (``jws.AccountKey``).

    ``session``: a ``core.http`` session (``make_session``) or None to make one from
    ``http_options``.  ``clock``/``sleep`` are injectable for tests.
    """

    def __init__(self, directory_url, account_key=None, session=None, account_uri=None,
                 clock=time.monotonic, sleep=time.sleep, **http_options):
        if not directory_url or not re.match(r'^https?://', str(directory_url)):
            raise ConfigError('%r is not an ACME directory URL' % (directory_url,), option='acme_directory',
                              fix='give the https:// URL of the CA\'s ACME directory')
        self.directory_url = directory_url
        self.key = account_key
        self.kid = account_uri
        self.clock = clock
        self.sleep = sleep
        if session is None:
            http_options.setdefault('option_names', HTTP_OPTION_NAMES)
            http_options.setdefault('clock', clock)
            http_options.setdefault('sleep', sleep)
            session = chttp.make_session(**http_options)
        self.session = session
        self._directory = None
        self._nonce = None
        self.warnings = list(getattr(getattr(session, 'certforge', None), 'warnings', []) or [])
        self.requests = 0

    # -- transport -------------------------------------------------------------------------

    def _http(self, method, url, **kwargs):
        self.requests += 1
        try:
            response = chttp.request(self.session, method, url, **kwargs)
        except TransientError as exc:
            if url == self.directory_url and exc.option is None:
                exc.option = 'acme_directory'
                exc.fix = ('check that the ACME server at %s is reachable from the controller '
                           '(URL, proxy, firewall)' % chttp.safe_url(url))
            raise
        nonce = response.headers.get('Replay-Nonce')
        if nonce:
            self._nonce = nonce
        return response

    @staticmethod
    def _json(response):
        try:
            return response.json()
        except ValueError:
            return None

    def directory(self):
        if self._directory is None:
            response = self._http('GET', self.directory_url, accept=ALL_ERRORS)
            data = self._json(response)
            if response.status_code >= 400:
                busy = response.status_code == 429 or response.status_code >= 500
                raise problem_error(data, response.status_code, self.directory_url,
                                    retry_after=chttp.parse_retry_after(response.headers.get('Retry-After')),
                                    option='acme_directory', fix=None if busy else 'check the ACME directory URL')
            if not isinstance(data, dict) or 'newNonce' not in data or 'newOrder' not in data:
                raise ConfigError('%s is not an ACME directory (no newNonce/newOrder)'
                                  % chttp.safe_url(self.directory_url), option='acme_directory',
                                  fix='give the URL of the ACME directory object, e.g. https://host/directory')
            self._directory = data
        return self._directory

    @property
    def meta(self):
        return self.directory().get('meta') or {}

    def _take_nonce(self):
        nonce, self._nonce = self._nonce, None
        if nonce:
            return nonce
        self._http('HEAD', self.directory()['newNonce'], accept=ALL_ERRORS)
        nonce, self._nonce = self._nonce, None
        if not nonce:
            raise TransientError('the ACME server sent no Replay-Nonce', fix='run again later')
        return nonce

    def post(self, url, payload, use_jwk=False, key=None, deadline=None, accept_errors=(),
             headers=None):
        """POST a JWS to ``url``; ``payload`` None is POST-as-GET.  Returns the response.

        badNonce answers are re-signed with a fresh nonce; 429/503 answers are retried after
        their Retry-After while ``deadline`` (a polling.Deadline) allows."""
        key = key or self.key
        if key is None:
            raise ConfigError('an account key is needed', option='account_key_path',
                              fix='set account_key_path or account_key_content')
        bad_nonces = 0
        while True:
            kid = None if use_jwk else self.kid
            if not use_jwk and not kid:
                raise ConfigError('no account URL known', option='account_key_path',
                                  fix='register the account first')
            body = jws.sign_jws(key, url, payload, nonce=self._take_nonce(), kid=kid)
            send_headers = {'Content-Type': JOSE}
            send_headers.update(headers or {})
            response = self._http('POST', url, data=jws.json_bytes(body), headers=send_headers,
                                  accept=ALL_ERRORS)
            status = response.status_code
            if status < 400 or status in accept_errors:
                return response
            data = self._json(response)
            kind = problem_type(data)
            if kind == 'badNonce' and bad_nonces < BAD_NONCE_RETRIES:
                bad_nonces += 1
                continue
            retry_after = chttp.parse_retry_after(response.headers.get('Retry-After'))
            if status in (429, 503) and retry_after is not None and deadline is not None \
                    and deadline.allows(retry_after):
                self.sleep(retry_after)
                continue
            raise problem_error(data, status, url, retry_after=retry_after)

    def get(self, url, deadline=None):
        """POST-as-GET; returns (json, response)."""
        response = self.post(url, None, deadline=deadline)
        return self._json(response), response

    # -- accounts --------------------------------------------------------------------------

    def new_account(self, contact=None, terms_agreed=False, eab=None, only_existing=False):
        """Register (or find) the account of the key.  ``eab``: (kid, hmac_key).
        Returns (created, account dict); sets ``self.kid``."""
        url = self.directory()['newAccount']
        if only_existing:
            payload = {'onlyReturnExisting': True}
        else:
            payload = {'termsOfServiceAgreed': bool(terms_agreed)}
            if contact:
                payload['contact'] = list(contact)
            if eab:
                payload['externalAccountBinding'] = jws.eab_jws(self.key, eab[0], eab[1], url)
        try:
            response = self.post(url, payload, use_jwk=True)
        except CertforgeError as exc:
            kind = getattr(exc, 'acme_type', '')
            if eab and kind in ('unauthorized', 'malformed', 'externalAccountRequired'):
                raise AuthError('the CA refused the external account binding: %s' % exc.msg,
                                option='eab_hmac_key',
                                fix='check eab_kid and eab_hmac_key (base64url, exactly as the CA '
                                    'issued them; one key id binds one account)',
                                details=exc.details)
            raise
        self.kid = response.headers.get('Location') or self.kid
        return response.status_code == 201, self._json(response) or {}

    def account(self):
        data, dummy = self.get(self.kid)
        return data or {}

    def update_account(self, payload):
        response = self.post(self.kid, payload)
        return self._json(response) or {}

    def key_change(self, new_key):
        """Roll the account over to ``new_key`` (RFC 8555 section 7.3.5)."""
        url = self.directory().get('keyChange')
        if not url:
            raise PermanentError('the CA offers no keyChange', option='new_account_key_path')
        inner = jws.sign_jws(new_key, url, {'account': self.kid, 'oldKey': self.key.jwk()})
        self.post(url, inner)
        self.key = new_key

    def eab_lookup(self, email, url=ZEROSSL_EAB_URL):
        """EAB credentials from a CA that hands them out by e-mail (ZeroSSL style)."""
        response = self._http('POST', url, data={'email': email}, accept=ALL_ERRORS)
        data = self._json(response) or {}
        if response.status_code >= 400 or not data.get('eab_kid') or not data.get('eab_hmac_key'):
            raise AuthError('the EAB lookup at %s gave no credentials (HTTP %s)'
                            % (chttp.safe_url(url), response.status_code), option='eab_lookup_email',
                            fix='check the e-mail address, or set eab_kid and eab_hmac_key')
        return data['eab_kid'], data['eab_hmac_key']

    # -- orders ----------------------------------------------------------------------------

    def new_order(self, identifiers, profile=None, replaces=None, deadline=None):
        """Create an order.  ``replaces`` (an ARI certID) is dropped and the order retried when
        the CA refuses it.  Returns (order url, order dict, warnings)."""
        warnings = []
        payload = {'identifiers': identifiers}
        if profile:
            offered = self.meta.get('profiles')
            if not offered:
                raise ConfigError('the CA offers no profiles, but profile=%s was asked for' % profile,
                                  option='profile', fix='drop the profile option for this CA')
            if profile not in offered:
                raise ConfigError('the CA does not offer profile %r' % profile, option='profile',
                                  fix='use one of: %s' % ', '.join(sorted(offered)))
            payload['profile'] = profile
        if replaces:
            payload['replaces'] = replaces
        url = self.directory()['newOrder']
        try:
            response = self.post(url, payload, deadline=deadline)
        except CertforgeError as exc:
            kind = getattr(exc, 'acme_type', None)
            if not replaces or kind in ('rateLimited', 'rejectedIdentifier', 'caa', 'unauthorized',
                                        'externalAccountRequired', 'unsupportedIdentifier',
                                        'invalidProfile', 'accountDoesNotExist'):
                raise
            warnings.append('the CA refused replaces=%s (%s); ordered without it'
                            % (replaces, exc.details.get('detail') or kind))
            payload.pop('replaces')
            response = self.post(url, payload, deadline=deadline)
        order = self._json(response) or {}
        location = response.headers.get('Location')
        if not location:
            raise PermanentError('the CA answered newOrder without a Location header')
        return location, order, warnings

    def finalize(self, finalize_url, csr_der, deadline=None):
        response = self.post(finalize_url, {'csr': jws.b64u(csr_der)}, deadline=deadline)
        return self._json(response) or {}, response

    def respond(self, challenge_url, deadline=None):
        response = self.post(challenge_url, {}, deadline=deadline)
        return self._json(response) or {}

    def download(self, cert_url, preferred_chain=None):
        """(certificate PEM, [chain PEMs], info) choosing among alternate chains by issuer CN."""
        response = self.post(cert_url, None, headers={'Accept': PEM_CHAIN})
        pems = split_chain(response.text)
        if not pems:
            raise PermanentError('the certificate download from %s held no certificate'
                                 % chttp.safe_url(cert_url))
        alternates = parse_links(response).get('alternate', [])
        info = {'alternates': len(alternates), 'chain': 'default'}
        if preferred_chain and not chain_matches(pems[1:] or pems, preferred_chain):
            for index, url in enumerate(alternates):
                alt = split_chain(self.post(url, None, headers={'Accept': PEM_CHAIN}).text)
                if alt and chain_matches(alt[1:] or alt, preferred_chain):
                    pems = alt
                    info['chain'] = 'alternate %d' % (index + 1)
                    break
            else:
                info['chain'] = 'default (no chain matches preferred_chain)'
        return pems[0], pems[1:], info

    def revoke(self, cert_der, reason=None, key=None):
        """Revoke; signed by the account (kid) or, with ``key``, by the certificate key (jwk).
        Returns False when the CA says it is already revoked."""
        payload = {'certificate': jws.b64u(cert_der)}
        if reason is not None:
            payload['reason'] = reason
        url = self.directory()['revokeCert']
        try:
            self.post(url, payload, use_jwk=key is not None, key=key)
        except CertforgeError as exc:
            if getattr(exc, 'acme_type', None) == 'alreadyRevoked':
                return False
            raise
        return True

    def renewal_info(self, cert_pem):
        """(suggestedWindow dict with explanationURL, Retry-After seconds) or (None, None)
        when the CA has no renewalInfo."""
        base = self.directory().get('renewalInfo')
        if not base:
            return None, None
        url = '%s/%s' % (base.rstrip('/'), ari_cert_id(cert_pem))
        response = self._http('GET', url, accept=ALL_ERRORS)
        if response.status_code >= 400:
            return None, None
        data = self._json(response) or {}
        window = dict(data.get('suggestedWindow') or {})
        if not window.get('start'):
            return None, None
        if data.get('explanationURL'):
            window['explanationURL'] = data['explanationURL']
        return window, chttp.parse_retry_after(response.headers.get('Retry-After'))
