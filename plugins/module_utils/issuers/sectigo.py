# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sectigo Certificate Manager (SCM): a REST client and the ``sectigo`` issuer connector.

``SectigoClient`` is the low-level part: one method per SCM endpoint, nothing cached, every
request counted in ``client.calls`` (``(method, path)`` tuples).  Reads that page
(``list_ssl``, ``iter_ssl``, ``count_ssl``, ``get_ssl``) are the building blocks of inventory
sync: ``list_ssl`` returns identities only (sslId, commonName, SANs, serial) plus the total
from ``X-Total-Count``; ``get_ssl`` returns the full record (status, dates, comments ...).

``SectigoIssuer`` is the connector (``core.hookspecs.IssuerConnector``): ``check`` validates a
request with read calls only, ``submit`` enrolls (or renews / replaces) with a unique token
in ``comments``, ``poll`` does one status/collect round, ``find_orders`` finds an order whose
enroll answer was lost (list by common name, match the token in ``comments``).

Authentication: ``login`` + ``password`` + ``customerUri`` headers on ``.../api``, or a client
certificate (PEM pair or PKCS#12) with ``login`` + ``customerUri`` on ``.../private/api``.
Every connection option falls back to an environment variable (``ENV_VARS``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import tempfile

from ansible_collections.certforge.pki.plugins.module_utils.core import http as chttp
from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    AuthError, CertforgeError, ConfigError, NotReadyError, PermanentError, PolicyError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import IssuerConnector, hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.core.model import (
    ORDER_FAILED, ORDER_ISSUED, ORDER_PENDING, ORDER_REVOKED, Order, reason_code)

DEFAULT_BASE_URL = 'https://cert-manager.com/api'
MAX_PAGE = 200
MAX_COMMENTS = 1024
MAX_EXTERNAL_REQUESTER = 512
TOKEN_PREFIX = 'certforge-token:'
TOKEN_RE = re.compile(r'certforge-token:([0-9a-fA-F]{8,64})')

#: connection option -> environment variable read when the option is not set
ENV_VARS = {
    'base_url': 'SECTIGO_BASE_URL',
    'customer_uri': 'SECTIGO_CUSTOMER_URI',
    'login': 'SECTIGO_LOGIN',
    'password': 'SECTIGO_PASSWORD',
    'client_cert': 'SECTIGO_CLIENT_CERT',
    'client_key': 'SECTIGO_CLIENT_KEY',
    'pkcs12_path': 'SECTIGO_PKCS12',
    'pkcs12_passphrase': 'SECTIGO_PKCS12_PASSPHRASE',
    'ca_bundle': 'SECTIGO_CA_BUNDLE',
}

#: connection options (doc fragment ``certforge.pki.sectigo``)
CONNECTION_ARGSPEC = dict(
    base_url=dict(type='str'),
    customer_uri=dict(type='str'),
    login=dict(type='str'),
    password=dict(type='str', no_log=True),
    client_cert=dict(type='path'),
    client_key=dict(type='path'),
    client_key_passphrase=dict(type='str', no_log=True),
    pkcs12_path=dict(type='path'),
    pkcs12_passphrase=dict(type='str', no_log=True),
    ca_bundle=dict(type='path'),
    validate_certs=dict(type='bool', default=True),
    proxy=dict(type='str'),
    timeout=dict(type='float', default=30),
    http_retries=dict(type='int', default=5),
)
CONNECTION_OPTIONS = tuple(CONNECTION_ARGSPEC)
SECRET_OPTIONS = ('password', 'client_key_passphrase', 'pkcs12_passphrase')

RENEW_METHODS = ('auto', 'renew_by_id', 'enroll', 'replace')
COLLECT_FORMATS = ('pemia', 'x509R', 'x509', 'pem')
DCV_MODES = ('CNAME', 'EMAIL', 'HTTP', 'HTTPS', 'TXT')

#: request options (module options of sectigo_certificate, keys of issuer_options for certificate)
REQUEST_ARGSPEC = dict(
    profile=dict(type='str'),
    term=dict(type='int'),
    organization=dict(type='str'),
    department=dict(type='str'),
    subject_alt_names=dict(type='list', elements='str'),
    multi_domain=dict(type='bool'),
    comments=dict(type='str'),
    external_requester=dict(type='list', elements='str'),
    custom_fields=dict(type='dict'),
    dcv_mode=dict(type='str', choices=list(DCV_MODES)),
    dcv_email=dict(type='str'),
    renew_method=dict(type='str', default='auto', choices=list(RENEW_METHODS)),
    collect_format=dict(type='str', default='pemia', choices=list(COLLECT_FORMATS)),
)

#: SCM status strings -> what they mean for us
PENDING_STATUSES = ('requested', 'approved', 'saapproved', 'sa approved', 'applied', 'init',
                    'enrolled - pending download', 'awaiting approval', 'not enrolled')
FAILED_STATUSES = ('declined', 'rejected', 'invalid')
#: collect answers that mean "not issued yet" (§2.3 of the reference)
NOT_READY_CODES = (0, -183, -1400, -109, -103, -140, -195)
#: SCM codes that mean "no such certificate"
UNKNOWN_ID_CODES = (-124, -5101, -123)
#: revocation reasons SCM accepts (RFC 5280 codes)
SCM_REVOCATION_CODES = (0, 1, 3, 4, 5)
REVOCATION_TEXT = {0: 'Unspecified', 1: 'Compromised Key', 3: 'Affiliation Changed',
                   4: 'Superseded', 5: 'Cessation of Operation'}
_EMAIL = re.compile(r'^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$')


def scm_code(exc):
    """The SCM error code of a core error raised for an SCM answer, or None."""
    code = (getattr(exc, 'details', None) or {}).get('code')
    try:
        return int(code)
    except (TypeError, ValueError):
        return None


def scm_description(exc):
    details = getattr(exc, 'details', None) or {}
    return details.get('description') or details.get('message') or str(getattr(exc, 'msg', exc))


def colon_serial(serial):
    """``0a1b2c`` / ``0A:1B:2C`` / int -> ``0A:1B:2C`` (the form SCM shows and takes)."""
    if isinstance(serial, int):
        text = '%X' % serial
    else:
        text = re.sub(r'[^0-9a-fA-F]', '', str(serial or '')).upper()
    if not text:
        return ''
    if len(text) % 2:
        text = '0' + text
    return ':'.join(text[i:i + 2] for i in range(0, len(text), 2))


def plain_serial(serial):
    return colon_serial(serial).replace(':', '')


def env_options(options, env=None):
    """``options`` with every unset connection option taken from its environment variable."""
    env = os.environ if env is None else env
    out = dict(options or {})
    for option, var in ENV_VARS.items():
        if out.get(option) in (None, '') and env.get(var):
            out[option] = env[var]
    return out


# ----------------------------------------------------------------------------- client certificates

def _ssl_context(cert_pem_path, key_path, key_passphrase, verify):
    """An SSLContext holding the client certificate (files are read now and may be removed)."""
    import ssl
    context = ssl.create_default_context()
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        if os.path.isdir(verify):
            context.load_verify_locations(capath=verify)
        else:
            context.load_verify_locations(cafile=verify)
    context.load_cert_chain(cert_pem_path, key_path, password=key_passphrase)
    return context


def _client_cert_context(cfg, prefix, verify):
    """SSLContext for the configured PEM pair or PKCS#12.  A PKCS#12 is converted into a
    temporary PEM pair (0600, in a 0700 directory) that is removed as soon as it is loaded."""
    import ssl
    if cfg.get('pkcs12_path'):
        option = prefix + 'pkcs12_path'
        path = os.path.expanduser(cfg['pkcs12_path'])
        try:
            with open(path, 'rb') as handle:
                data = handle.read()
        except (IOError, OSError) as exc:
            raise ConfigError('cannot read %s: %s' % (path, exc.strerror or exc), option=option,
                              fix='give the path of a readable PKCS#12 file on the controller')
        lib = cx509.require_cryptography()
        from cryptography.hazmat.primitives.serialization import pkcs12
        passphrase = cfg.get('pkcs12_passphrase')
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(
                data, passphrase.encode('utf-8') if passphrase else None)
        except (ValueError, TypeError) as exc:
            text = str(exc).lower()
            why = 'wrong passphrase or not a PKCS#12 file' if ('password' in text or 'invalid' in text) else exc
            raise ConfigError('cannot open the PKCS#12 file %s (%s)' % (path, why),
                              option=prefix + 'pkcs12_passphrase',
                              fix='give the passphrase of the PKCS#12 file (or check the file)')
        if key is None or cert is None:
            raise ConfigError('%s holds no private key and certificate' % path, option=option,
                              fix='export the client certificate together with its private key')
        ser = lib.serialization
        tmpdir = tempfile.mkdtemp(prefix='certforge-sectigo-')
        try:
            key_path = os.path.join(tmpdir, 'client.key')
            cert_path = os.path.join(tmpdir, 'client.crt')
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'wb') as handle:
                handle.write(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                               ser.NoEncryption()))
            fd = os.open(cert_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'wb') as handle:
                handle.write(cert.public_bytes(ser.Encoding.PEM))
                for other in extra or ():
                    handle.write(other.public_bytes(ser.Encoding.PEM))
            try:
                return _ssl_context(cert_path, key_path, None, verify)
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError('the PKCS#12 content is unusable for TLS (%s)' % exc, option=option,
                                  fix='export an RSA or ECDSA client certificate with its key')
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    cert_option = prefix + 'client_cert'
    cert_path = os.path.expanduser(cfg['client_cert'])
    key_path = os.path.expanduser(cfg['client_key']) if cfg.get('client_key') else None
    for path, option in ((cert_path, cert_option), (key_path, prefix + 'client_key')):
        if path and not os.access(path, os.R_OK):
            raise ConfigError('%s does not exist or is not readable' % path, option=option,
                              fix='give the path of a readable PEM file on the controller')
    try:
        return _ssl_context(cert_path, key_path, cfg.get('client_key_passphrase'), verify)
    except ssl.SSLError as exc:
        raise ConfigError('cannot load the client certificate and key (%s)' % exc, option=cert_option,
                          fix='give a PEM certificate and its matching PEM key (client_key, and '
                              'client_key_passphrase when the key is encrypted)')
    except OSError as exc:
        raise ConfigError('cannot read the client certificate or key (%s)' % exc, option=cert_option,
                          fix='check the paths and permissions')


def _mount_context(session, context):
    """Make ``session`` use ``context`` (client certificate) for every https connection."""
    import requests

    class _ContextAdapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            kwargs['ssl_context'] = context
            return super(_ContextAdapter, self).init_poolmanager(*args, **kwargs)

        def proxy_manager_for(self, proxy, **kwargs):
            kwargs['ssl_context'] = context
            return super(_ContextAdapter, self).proxy_manager_for(proxy, **kwargs)

    session.mount('https://', _ContextAdapter(max_retries=0))


# ----------------------------------------------------------------------------- the client

class SectigoClient:
    """Low-level SCM REST client over ``core.http`` (retries on 429/5xx honouring Retry-After,
    a lost POST answer is never retried).  Methods return decoded JSON; errors are
    ``core.errors`` exceptions whose ``details`` hold the SCM ``code`` and ``description``.

    Build with :meth:`from_options` (module options, environment fallback) or pass a ready
    ``session`` (tests).  ``calls`` lists every request sent as ``(method, path)``.
    """

    def __init__(self, base_url, customer_uri, login, password=None, session=None,
                 client_cert=False, option_prefix=''):
        self.base_url = base_url.rstrip('/')
        self.customer_uri = customer_uri
        self.login = login
        self.client_cert = client_cert
        self.prefix = option_prefix
        self.calls = []
        headers = {'login': login, 'customerUri': customer_uri, 'Accept': 'application/json'}
        if password is not None:
            headers['password'] = password
        self.session = session
        self.session.headers.update(headers)
        self.http = chttp.HttpClient(self.base_url, session=self.session)

    # -- construction
    @classmethod
    def from_options(cls, options, option_prefix='', env=None, clock=None, sleep=None,
                     backoff=None):
        """Build from connection options (see ``CONNECTION_ARGSPEC``), unset ones taken from
        the environment (``ENV_VARS``).  Raises ConfigError naming the option and the fix."""
        cfg = env_options(options, env)
        p = option_prefix
        client_cert = bool(cfg.get('client_cert') or cfg.get('pkcs12_path'))
        if cfg.get('client_cert') and cfg.get('pkcs12_path'):
            raise ConfigError('client_cert and pkcs12_path exclude each other', option=p + 'pkcs12_path',
                              fix='give either a PEM pair (client_cert, client_key) or a PKCS#12 file')
        for option in ('customer_uri', 'login'):
            if not cfg.get(option):
                raise ConfigError('is required to talk to Sectigo Certificate Manager', option=p + option,
                                  fix='set %s (or the environment variable %s)' % (option, ENV_VARS[option]))
        if not client_cert and not cfg.get('password'):
            raise ConfigError('is required unless a client certificate is used', option=p + 'password',
                              fix='set password (or %s), or client_cert/pkcs12_path for certificate '
                                  'authentication' % ENV_VARS['password'])
        base_url = (cfg.get('base_url') or (DEFAULT_BASE_URL.replace('/api', '/private/api')
                                            if client_cert else DEFAULT_BASE_URL)).rstrip('/')
        if not re.match(r'^https?://[^/]+', base_url):
            raise ConfigError('%r is not an http(s) URL' % chttp.safe_url(base_url), option=p + 'base_url',
                              fix='for example https://cert-manager.com/api')
        if not base_url.endswith('/api'):
            base_url += '/api'
        private = '/private/' in base_url + '/'
        if client_cert and not private:
            fixed = re.sub(r'/api$', '/private/api', base_url)
            raise ConfigError('client certificate authentication needs the /private/api base URL, '
                              'got %s' % chttp.safe_url(base_url), option=p + 'base_url',
                              fix='set base_url to %s' % chttp.safe_url(fixed))
        if not client_cert and private:
            raise ConfigError('%s is the client-certificate endpoint but no client certificate is '
                              'configured' % chttp.safe_url(base_url), option=p + 'base_url',
                              fix='drop /private from base_url for password authentication, or set '
                                  'client_cert/pkcs12_path')
        timeout = cfg.get('timeout') if cfg.get('timeout') is not None else 30
        retries = cfg.get('http_retries') if cfg.get('http_retries') is not None else 5
        validate = cfg.get('validate_certs')
        validate = True if validate is None else bool(validate)
        kwargs = {}
        if clock is not None:
            kwargs['clock'] = clock
        if sleep is not None:
            kwargs['sleep'] = sleep
        if backoff is not None:
            kwargs['backoff'] = backoff
        secrets = [cfg.get(k) for k in SECRET_OPTIONS if cfg.get(k)]
        session = chttp.make_session(
            timeout=timeout, retries=retries, ca_bundle=cfg.get('ca_bundle'),
            validate_certs=validate, proxy=cfg.get('proxy'), redact=secrets,
            option_names={'ca_bundle': p + 'ca_bundle', 'validate_certs': p + 'validate_certs',
                          'client_cert': p + ('pkcs12_path' if cfg.get('pkcs12_path') else 'client_cert'),
                          'client_key': p + 'client_key', 'proxy': p + 'proxy',
                          'timeout': p + 'timeout', 'retries': p + 'http_retries',
                          'auth': p + ('client_cert' if client_cert else 'password')},
            **kwargs)
        if client_cert:
            _mount_context(session, _client_cert_context(cfg, p, session.certforge.verify))
        return cls(base_url, cfg['customer_uri'], cfg['login'],
                   password=None if client_cert else cfg.get('password'), session=session,
                   client_cert=client_cert, option_prefix=p)

    @property
    def warnings(self):
        return self.http.warnings

    def close(self):
        self.http.close()

    # -- transport
    def _request(self, method, path, accept=(), **kwargs):
        self.calls.append((method, path))
        try:
            return self.http.request(method, path, accept=accept, **kwargs)
        except AuthError as exc:
            code = scm_code(exc)
            p = self.prefix
            if self.client_cert:
                option, fix = p + 'login', ('check login and customer_uri, and that the client '
                                            'certificate belongs to that API admin')
            else:
                option, fix = p + 'password', ('check login, password and customer_uri; the admin '
                                               'must be of the API type')
            if code in (-3, -25, -37):
                fix = 'grant the API admin the privilege for this operation in SCM'
            raise AuthError('Sectigo refused the request %s %s (%s)' % (
                method, path, scm_description(exc)), option=option, fix=fix, details=exc.details)

    def _json(self, method, path, accept=(), **kwargs):
        response = self._request(method, path, accept=accept, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise PermanentError('%s %s -> HTTP %d: the answer is not JSON' % (
                method, path, response.status_code), details={'status': response.status_code})

    # -- profiles, custom fields, organizations, domains
    def types(self, organization_id=None):
        """Certificate profiles: ``[{id, name, terms, keyTypes, ...}]``."""
        params = {'organizationId': organization_id} if organization_id is not None else None
        return self._json('GET', 'ssl/v1/types', params=params) or []

    def custom_fields(self):
        """SSL custom fields: ``[{id, name, mandatory}]``."""
        return self._json('GET', 'ssl/v1/customFields') or []

    def organizations(self):
        """Organizations with their departments (no paging): ``[{id, name, departments}]``."""
        return self._json('GET', 'organization/v1') or []

    def organization(self, org_id):
        """Details of an organization or department (``sslCertsApiEnabled``, ``certTypes``...)."""
        return self._json('GET', 'organization/v1/%s' % int(org_id)) or {}

    def domains(self, filters=None, size=MAX_PAGE, position=0):
        """One page of domains: ``(items, total)``; items are ``{id, name}``."""
        params = dict(filters or {}, size=int(size), position=int(position))
        response = self._request('GET', 'domain/v1', params=params)
        return response.json() or [], _total(response)

    def domain(self, domain_id):
        """Details of one domain (``validationStatus``, ``dcvExpiration``, ``delegations``...)."""
        return self._json('GET', 'domain/v1/%s' % int(domain_id)) or {}

    # -- SSL inventory (the building blocks of an inventory sync)
    def list_ssl(self, filters=None, size=MAX_PAGE, position=0):
        """One page of ``GET /ssl/v1``: ``(items, total)``.

        ``filters``: SCM query filters (``commonName``, ``subjectAlternativeName``,
        ``status``, ``sslTypeId``, ``orgId``, ``serialNumber``, ``requester``,
        ``externalRequester``, ...).  ``size`` is clamped to 1..200, ``position`` is the
        0-based offset.  Items are identities only (``sslId``, ``commonName``,
        ``subjectAlternativeNames``, ``serialNumber``); ``total`` is ``X-Total-Count`` (None
        when the server omits it).
        """
        size = max(1, min(int(size), MAX_PAGE))
        params = dict(filters or {}, size=size, position=max(0, int(position)))
        response = self._request('GET', 'ssl/v1', params=params)
        return response.json() or [], _total(response)

    def iter_ssl(self, filters=None, page_size=MAX_PAGE, limit=None):
        """Every listed item for ``filters``, page by page (stops on a short page or at the
        reported total, or after ``limit`` items)."""
        position = 0
        seen = 0
        while True:
            items, total = self.list_ssl(filters, size=page_size, position=position)
            for item in items:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            position += len(items)
            if len(items) < max(1, min(int(page_size), MAX_PAGE)) or (total is not None and position >= total):
                return

    def count_ssl(self, filters=None):
        """Number of certificates matching ``filters`` (``HEAD /ssl/v1``, ``X-Total-Count``)."""
        response = self._request('HEAD', 'ssl/v1', params=dict(filters or {}))
        total = _total(response)
        return 0 if total is None else total

    def get_ssl(self, ssl_id):
        """Full record of one certificate (``status``, ``comments``, ``serialNumber``,
        ``expires``, ``certType``, ``orgId`` ...)."""
        return self._json('GET', 'ssl/v1/%s' % int(ssl_id)) or {}

    # -- SSL writes
    def enroll(self, body):
        """``POST /ssl/v1/enroll`` -> ``{sslId, renewId}``."""
        return self._json('POST', 'ssl/v1/enroll', json=body) or {}

    def collect(self, ssl_id, fmt='pemia'):
        """PEM text of an issued certificate in format ``fmt``; NotReadyError (with the
        server's Retry-After) while SCM is still processing; PermanentError otherwise."""
        path = 'ssl/v1/collect/%s' % int(ssl_id)
        response = self._request('GET', path, params={'format': fmt}, accept=(400, 404, 409))
        if response.status_code < 300 and response.content:
            return response.text
        data = chttp._json(response) if response.content else None
        code = data.get('code') if isinstance(data, dict) else None
        description = data.get('description') if isinstance(data, dict) else None
        retry_after = chttp.parse_retry_after(response.headers.get('Retry-After'))
        if response.status_code < 300 or code in NOT_READY_CODES:
            raise NotReadyError('certificate %s is not ready (%s)' % (
                ssl_id, description or 'empty answer'), retry_after=retry_after,
                details={'code': code, 'description': description})
        raise PermanentError('GET %s -> HTTP %d: code %s: %s' % (
            path, response.status_code, code, description),
            details={'status': response.status_code, 'code': code, 'description': description})

    def renew_by_id(self, ssl_id, body=None):
        """``POST /ssl/v1/renewById/{id}`` (optional ``{csr, dcvMode, dcvEmail}``) -> new sslId."""
        data = self._json('POST', 'ssl/v1/renewById/%s' % int(ssl_id), json=body or {})
        return (data or {}).get('sslId')

    def renew(self, renew_id, body=None):
        """``POST /ssl/v1/renew/{renewId}``; SCM returns no new id."""
        self._request('POST', 'ssl/v1/renew/%s' % renew_id, json=body or {})

    def replace(self, ssl_id, body):
        """``POST /ssl/v1/replace/{id}`` with ``{csr, reason, commonName,
        subjectAlternativeNames[]}``: the same sslId is issued again."""
        self._request('POST', 'ssl/v1/replace/%s' % int(ssl_id), json=body)

    def revoke(self, ssl_id, reason_code=0, reason='Unspecified'):
        self._request('POST', 'ssl/v1/revoke/%s' % int(ssl_id),
                      json={'reasonCode': int(reason_code), 'reason': reason})

    def revoke_by_serial(self, serial, reason_code=0, reason='Unspecified'):
        self._request('POST', 'ssl/v1/revoke/serial/%s' % colon_serial(serial),
                      json={'reasonCode': int(reason_code), 'reason': reason})

    def approve(self, ssl_id, message='Approved'):
        self._request('POST', 'ssl/v1/approve/%s' % int(ssl_id), json={'message': message})

    def decline(self, ssl_id, message='Declined'):
        self._request('POST', 'ssl/v1/decline/%s' % int(ssl_id), json={'message': message})


def _total(response):
    try:
        return int(response.headers.get('X-Total-Count'))
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- the connector

def _norm(text):
    return ' '.join(str(text or '').split()).lower()


def _is_id(value):
    return isinstance(value, int) and not isinstance(value, bool) or bool(re.match(r'^\s*\d+\s*$', str(value)))


def _dns_names(sans):
    out = []
    for san in sans or []:
        text = str(san)
        if ':' in text and text.split(':', 1)[0].upper() in ('DNS', 'IP', 'EMAIL', 'URI'):
            text = text.split(':', 1)[1]
        text = text.strip().lower()
        if text and text not in out:
            out.append(text)
    return out


class SectigoIssuer(IssuerConnector):
    """The ``sectigo`` issuer connector.  ``options``: connection options (``CONNECTION_ARGSPEC``,
    environment fallback) plus request options (``REQUEST_ARGSPEC``).  ``option_prefix`` is
    prepended to option names in errors (``issuer_options.`` when built by the registry)."""

    name = 'sectigo'
    fingerprint_ignore = CONNECTION_OPTIONS
    #: SCM lists certificates by name and keeps the order token in ``comments``: an order whose
    #: answer was lost, or placed by a controller with another store, is found (``find_orders``)
    searchable = True
    option_mutually_exclusive = [('client_cert', 'pkcs12_path')]

    @classmethod
    def option_spec(cls):
        """``issuer_options`` of the generic certificate module: the connection options (unset
        ones come from the environment) and the request options of ``sectigo_certificate``."""
        spec = dict(CONNECTION_ARGSPEC)
        spec.update(REQUEST_ARGSPEC)
        spec['ssl_id'] = dict(type='int')
        return spec

    def __init__(self, options, option_prefix='issuer_options.', client=None):
        super(SectigoIssuer, self).__init__(options)
        self.prefix = option_prefix
        self.client = client if client is not None else SectigoClient.from_options(
            self.options, option_prefix=option_prefix)
        self.warnings = list(self.client.warnings)
        self._cache = {}
        self._prepared = {}

    def opt(self, name):
        return self.prefix + name

    def _cached(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    # -- lookups (cached per run)
    def organizations(self):
        return self._cached('orgs', self.client.organizations)

    def organization_details(self, org_id):
        return self._cached(('org', int(org_id)), lambda: self.client.organization(org_id))

    def profiles(self, org_id=None):
        return self._cached(('types', org_id), lambda: self.client.types(org_id))

    def custom_fields(self):
        return self._cached('custom_fields', self.client.custom_fields)

    def resolve_organization(self, csr=None):
        """(org_id, details) as the Keyfactor plugin resolves it: organization by id, or by
        name (else the CSR's O=) plus an optional department name; the department when given,
        else the organization.  It must have the SSL REST API enabled."""
        org = self.options.get('organization')
        dept = self.options.get('department')
        if org in (None, '') and csr is not None:
            values = [a.value for a in csr.subject if a.oid.dotted_string == '2.5.4.10']
            org = values[0] if values else None
        if org in (None, ''):
            raise ConfigError('no organization to enroll under', option=self.opt('organization'),
                              fix='set organization (name or id), or put O= in the CSR subject')
        target_id = None
        if _is_id(org) and not dept:
            target_id = int(org)
        else:
            orgs = self.organizations()
            match = [o for o in orgs if (_is_id(org) and str(o.get('id')) == str(org).strip())
                     or _norm(o.get('name')) == _norm(org)]
            if not match:
                known = ', '.join(sorted(str(o.get('name')) for o in orgs)) or '(none visible)'
                raise ConfigError('organization %r is unknown to Sectigo' % (org,),
                                  option=self.opt('organization'),
                                  fix='use one of: %s' % known)
            target_id = int(match[0]['id'])
            if dept:
                depts = match[0].get('departments') or []
                found = [d for d in depts if _norm(d.get('name')) == _norm(dept)
                         or (_is_id(dept) and str(d.get('id')) == str(dept).strip())]
                if not found:
                    known = ', '.join(sorted(str(d.get('name')) for d in depts)) or '(none)'
                    raise ConfigError('department %r is not in organization %r' % (dept, match[0].get('name')),
                                      option=self.opt('department'),
                                      fix='use one of its departments: %s, or drop department' % known)
                target_id = int(found[0]['id'])
        try:
            details = self.organization_details(target_id)
        except PermanentError as exc:
            raise ConfigError('organization %s is unknown to Sectigo (%s)' % (target_id, scm_description(exc)),
                              option=self.opt('department' if dept else 'organization'),
                              fix='use an organization or department id that exists (see sectigo_account_info)')
        option = self.opt('department' if dept else 'organization')
        if details.get('sslCertsApiEnabled') is False:
            raise PolicyError('%s %r does not have the SSL REST API enabled' % (
                'department' if dept else 'organization', details.get('name') or target_id),
                option=option, fix='tick "Enable Web/REST API" for SSL on it in SCM, or use another one')
        cert_types = details.get('certTypes')
        if cert_types is not None and not [t for t in cert_types if str(t).upper() == 'SSL']:
            raise PolicyError('%s %r may not request SSL certificates' % (
                'department' if dept else 'organization', details.get('name') or target_id),
                option=option, fix='allow SSL certificates for it in SCM, or use another one')
        return target_id, details

    def resolve_profile(self, org_id, profile=None):
        profile = profile if profile not in (None, '') else self.options.get('profile')
        if profile in (None, ''):
            raise ConfigError('no certificate profile given', option=self.opt('profile'),
                              fix='set profile to a profile name or id (see sectigo_account_info)')
        types = self.profiles(org_id)
        match = [t for t in types if (_is_id(profile) and str(t.get('id')) == str(profile).strip())
                 or _norm(t.get('name')) == _norm(profile)]
        if not match:
            known = ', '.join('%s (%s)' % (t.get('name'), t.get('id')) for t in types) or '(none)'
            raise ConfigError('certificate profile %r is unknown for organization %s' % (profile, org_id),
                              option=self.opt('profile'), fix='use one of: %s' % known)
        return match[0]

    def _term(self, request, profile):
        term = self.options.get('term') or request.validity_days
        option = self.opt('term') if self.options.get('term') else 'validity_days'
        terms = [int(t) for t in profile.get('terms') or []]
        if term is None:
            if not terms:
                raise ConfigError('profile %r lists no terms' % profile.get('name'), option=self.opt('term'),
                                  fix='set term (days)')
            return terms[0]
        if terms and int(term) not in terms:
            raise ConfigError('term %s days is not allowed by profile %r' % (term, profile.get('name')),
                              option=option, fix='use one of: %s' % ', '.join(str(t) for t in terms))
        return int(term)

    def _comments(self, token):
        user = self.options.get('comments') or ''
        marker = '%s%s' % (TOKEN_PREFIX, token or '0' * 32)
        text = ('%s %s' % (user, marker)).strip() if user else marker
        if len(text) > MAX_COMMENTS:
            raise ConfigError('comments are %d characters with the order token (%d allowed)'
                              % (len(text), MAX_COMMENTS), option=self.opt('comments'),
                              fix='shorten comments to %d characters' % (MAX_COMMENTS - len(marker) - 1))
        return text

    def _external_requester(self):
        emails = self.options.get('external_requester') or []
        if isinstance(emails, str):
            emails = [e for e in re.split(r'[,\s]+', emails) if e]
        bad = [e for e in emails if not _EMAIL.match(str(e))]
        if bad:
            raise ConfigError('not an email address: %s' % ', '.join(bad), option=self.opt('external_requester'),
                              fix='give a list of email addresses')
        text = ','.join(emails)
        if len(text) > MAX_EXTERNAL_REQUESTER:
            raise ConfigError('longer than %d characters' % MAX_EXTERNAL_REQUESTER,
                              option=self.opt('external_requester'), fix='give fewer addresses')
        return text

    def _custom_fields(self):
        given = self.options.get('custom_fields') or {}
        if not isinstance(given, dict):
            raise ConfigError('must be a mapping of field name to value', option=self.opt('custom_fields'),
                              fix='for example {cost-center: CC-42}')
        fields = self.custom_fields()
        by_name = dict((_norm(f.get('name')), f) for f in fields)
        unknown = [k for k in given if _norm(k) not in by_name]
        if unknown:
            raise ConfigError('unknown custom field(s): %s' % ', '.join(sorted(unknown)),
                              option=self.opt('custom_fields'),
                              fix='use the SSL custom fields defined in SCM: %s'
                                  % (', '.join(sorted(str(f.get('name')) for f in fields)) or '(none)'))
        have = set(_norm(k) for k, v in given.items() if v not in (None, ''))
        missing = [f.get('name') for f in fields if f.get('mandatory') and _norm(f.get('name')) not in have]
        if missing:
            raise ConfigError('mandatory custom field(s) missing: %s' % ', '.join(sorted(missing)),
                              option=self.opt('custom_fields'),
                              fix='set custom_fields: {%s: <value>}' % ', '.join(sorted(missing)))
        return [{'name': by_name[_norm(k)].get('name'), 'value': str(v)} for k, v in sorted(given.items())
                if v not in (None, '')]

    def _sans(self, csr, common_name, profile):
        """SAN list for ``subjAltNames`` under the multi-domain rule (Keyfactor): with a
        multi-domain profile the CN is not repeated in the SAN string; a single-domain
        profile takes one name (the CN, alone or with its www/bare variant)."""
        requested = self.options.get('subject_alt_names')
        names = _dns_names(requested if requested else cx509.san_list(csr))
        multi = self.options.get('multi_domain')
        if multi is None:
            multi = _profile_multi_domain(profile)
        if common_name and names and common_name not in names:
            # SCM always certifies the CN: a CSR whose SANs lack it gets a certificate with other
            # names than asked for (and every later run would see a SAN mismatch).
            raise PolicyError('the common name %s is not among the SANs (%s)' % (common_name, ', '.join(names)),
                              option=self.opt('subject_alt_names') if requested else 'csr',
                              fix='add DNS:%s to the SANs of the CSR (or to subject_alt_names)' % common_name)
        wildcards = [n for n in names + [common_name or ''] if n.startswith('*.')]
        if wildcards and 'wildcard' not in _norm(profile.get('name')) + _norm(profile.get('description')):
            raise PolicyError('profile %r does not issue wildcard names (%s)' % (profile.get('name'), wildcards[0]),
                              option=self.opt('profile'), fix='use a wildcard profile, or drop the wildcard name')
        if multi is False:
            others = [n for n in names if n != common_name]
            if others:
                raise PolicyError('profile %r is single-domain but %d names were requested (%s)' % (
                    profile.get('name'), len(names), ', '.join(names)), option=self.opt('subject_alt_names'),
                    fix='use a multi-domain profile, or request only %s' % (common_name or 'one name'))
        return names

    def prepare(self, request):
        """Everything the enroll needs, resolved and checked with read calls only."""
        key = request.token or ''
        csr = cx509.load_csr(request.csr_pem, option='csr')
        cx509.verify_csr_signature(csr, option='csr')
        cns = [a.value for a in csr.subject if a.oid.dotted_string == '2.5.4.3']
        common_name = (request.common_name or (cns[0] if cns else '') or '').lower() or None
        org_id, org = self.resolve_organization(csr)
        profile = self.resolve_profile(org_id, request.profile)
        term = self._term(request, profile)
        sans = self._sans(csr, common_name, profile)
        if not common_name and not sans:
            raise ConfigError('the CSR has neither a common name nor DNS names', option='csr',
                              fix='create the CSR with a common name or subject_alt_names')
        _check_key_type(csr, profile)
        prepared = dict(org_id=org_id, org=org, profile=profile, term=term, sans=sans,
                        common_name=common_name or sans[0],
                        comments=self._comments(request.token),
                        external_requester=self._external_requester(),
                        custom_fields=self._custom_fields(),
                        public_key=cx509.public_key_fingerprint(csr.public_key()))
        if self.options.get('dcv_mode') == 'EMAIL' and not self.options.get('dcv_email'):
            raise ConfigError('dcv_mode EMAIL needs dcv_email', option=self.opt('dcv_email'),
                              fix='set dcv_email to an address SCM offers for the domain')
        self._prepared[key] = prepared
        return prepared

    def check(self, request):
        """Validate everything readable before any write (no side effect)."""
        self.prepare(request)

    # -- submit
    def _enroll_body(self, request, prep):
        multi = self.options.get('multi_domain')
        if multi is None:
            multi = _profile_multi_domain(prep['profile'])
        sans = list(prep['sans'])
        cn = prep['common_name']
        # Keyfactor's rule: a multi-domain request does not repeat the CN in subjAltNames;
        # a single-domain request names its one name there.
        if multi and cn in sans and len(sans) > 1:
            sans = [s for s in sans if s != cn]
        body = {'orgId': prep['org_id'], 'certType': int(prep['profile']['id']), 'term': prep['term'],
                'csr': request.csr_pem.strip(), 'subjAltNames': ','.join(sans),
                'comments': self._comments(request.token),
                'externalRequester': prep['external_requester']}
        if prep['custom_fields']:
            body['customFields'] = prep['custom_fields']
        if self.options.get('dcv_mode'):
            body['dcvMode'] = self.options['dcv_mode']
            if self.options.get('dcv_email'):
                body['dcvEmail'] = self.options['dcv_email']
        return body

    def submit(self, request):
        prep = self._prepared.get(request.token or '')
        if prep is None or prep.get('comments') != self._comments(request.token):
            prep = self.prepare(request)
        method, current_id = self._renewal_method(request, prep)
        details = {'public_key': prep['public_key'], 'method': method,
                   'common_name': prep['common_name']}
        if method == 'renew_by_id':
            body = {'csr': request.csr_pem.strip()}
            if self.options.get('dcv_mode'):
                body['dcvMode'] = self.options['dcv_mode']
            new_id = self._write(lambda: self.client.renew_by_id(current_id, body), 'renew')
            if not new_id:
                raise PermanentError('renewById of %s returned no new sslId' % current_id,
                                     fix='look the renewal up in SCM')
            details.update(renewed_from=str(current_id))
            return Order(issuer=self.name, id=str(new_id), status=ORDER_PENDING, details=details)
        if method == 'replace':
            body = {'csr': request.csr_pem.strip(), 'reason': 'Key rotation (%s%s)' % (TOKEN_PREFIX, request.token),
                    'commonName': prep['common_name'], 'subjectAlternativeNames': prep['sans']}
            if self.options.get('dcv_mode'):
                body['dcvMode'] = self.options['dcv_mode']
            self._write(lambda: self.client.replace(current_id, body), 'replace')
            details.update(replaced=True)
            return Order(issuer=self.name, id=str(current_id), status=ORDER_PENDING, details=details)
        answer = self._write(lambda: self.client.enroll(self._enroll_body(request, prep)), 'enroll')
        ssl_id = answer.get('sslId') if isinstance(answer, dict) else None
        if ssl_id is None:
            raise PermanentError('enroll answered without an sslId', fix='look the order up in SCM')
        details.update(renew_id=answer.get('renewId'))
        return Order(issuer=self.name, id=str(ssl_id), status=ORDER_PENDING, details=details)

    def _write(self, fn, what):
        """Run a write; map SCM refusals to errors naming the option."""
        try:
            return fn()
        except (AuthError, NotReadyError) as exc:
            raise exc
        except PermanentError as exc:
            if exc.details.get('request_sent') == 'unknown':
                raise
            raise self._refusal(exc, what)

    def _refusal(self, exc, what):
        code = scm_code(exc)
        desc = scm_description(exc)
        mapping = {
            -9: 'csr', -10: 'csr', -138: 'csr', -11: 'csr', -13: 'csr', -141: 'csr', -194: 'csr', -170: 'csr',
            -36: self.opt('term'), -39: self.opt('profile'), -111: self.opt('profile'),
            -62: self.opt('custom_fields'), -135: self.opt('custom_fields'),
            -107: self.opt('subject_alt_names'), -737: self.opt('subject_alt_names'),
            -1137: self.opt('subject_alt_names'), -715: self.opt('subject_alt_names'),
            -727: self.opt('subject_alt_names'), -732: self.opt('subject_alt_names'),
            -1010: self.opt('subject_alt_names'), -164: self.opt('subject_alt_names'),
            -843: self.opt('organization'), -180: self.opt('renew_method'), -130: self.opt('renew_method'),
            -1148: self.opt('renew_method'),
        }
        option = mapping.get(code)
        if code == -1601:
            field = re.search(r"[Ff]ield '([A-Za-z]+)'", desc or '')
            fields = {'subjAltNames': 'subject_alt_names', 'comments': 'comments', 'csr': 'csr',
                      'externalRequester': 'external_requester', 'customFields': 'custom_fields',
                      'dcvMode': 'dcv_mode', 'orgId': 'organization', 'reason': 'comments'}
            name = fields.get(field.group(1)) if field else None
            option = None if name is None else ('csr' if name == 'csr' else self.opt(name))
        cls = ConfigError if option else PermanentError
        return cls('Sectigo refused the %s: code %s: %s' % (what, code, desc), option=option,
                   fix='correct the request and run again' if option else 'see the SCM error code',
                   details=exc.details)

    def _current_id(self, request):
        """sslId of the certificate being renewed (by its serial), or None."""
        if self.options.get('ssl_id'):
            return int(self.options['ssl_id'])
        if not request.replaces:
            return None
        cert = cx509.load_certificate(request.replaces, option='certificate_path')
        serial = cx509.serial_hex(cert)
        for filt in ({'serialNumber': colon_serial(serial)},):
            items, dummy = self.client.list_ssl(filt, size=10)
            for item in items:
                if plain_serial(item.get('serialNumber')) == serial:
                    return int(item.get('sslId') or item.get('id'))
        return None

    def _renewal_method(self, request, prep):
        method = self.options.get('renew_method') or 'auto'
        if method == 'enroll' or not request.replaces:
            return 'enroll', None
        current = cx509.load_certificate(request.replaces, option='certificate_path')
        current_id = self._current_id(request)
        if current_id is None:
            self.warnings.append('the certificate being renewed (serial %s) is not in Sectigo; '
                                 'enrolling a new one' % cx509.serial_hex(current))
            return 'enroll', None
        if method == 'auto':
            key_changed = cx509.public_key_fingerprint(current.public_key()) != prep['public_key']
            sans_changed = sorted(_dns_names(cx509.san_list(current))) != sorted(prep['sans'])
            if sans_changed:
                return 'enroll', None
            method = 'replace' if key_changed else 'renew_by_id'
        return method, current_id

    # -- poll
    def poll(self, order):
        """One round: details, then collect when Issued.  Never sleeps."""
        record = self.get(order.id, option='ssl_id')
        status = str(record.get('status') or '')
        low = status.lower()
        order.details = dict(order.details or {}, scm_status=status)
        order.retry_after = None
        if low in FAILED_STATUSES:
            raise PermanentError('Sectigo order %s is %s' % (order.id, status),
                                 fix='see the order in SCM; change the request (for example a new CSR) '
                                     'to order again', details={'ssl_id': order.id, 'status': status})
        if low in ('revoked', 'expired', 'replaced') and not order.details.get('replaced'):
            raise PermanentError('Sectigo order %s is %s' % (order.id, status),
                                 details={'ssl_id': order.id, 'status': status},
                                 fix='request a new certificate (drop the old order or use force)')
        if low != 'issued':
            return order
        fmt = self.options.get('collect_format') or 'pemia'
        try:
            text = self.client.collect(order.id, fmt)
        except NotReadyError as exc:
            order.retry_after = exc.retry_after
            return order
        leaf, chain = split_collected(text, order.details.get('public_key'))
        if leaf is None:       # a replace still serves the old certificate
            return order
        order.status = ORDER_ISSUED
        order.certificate_pem = leaf
        order.chain_pem = chain
        order.details['serial'] = record.get('serialNumber')
        return order

    def get(self, ssl_id, option='ssl_id'):
        try:
            return self.client.get_ssl(ssl_id)
        except PermanentError as exc:
            if scm_code(exc) in UNKNOWN_ID_CODES or exc.details.get('status') == 404:
                raise ConfigError('Sectigo knows no certificate with sslId %s (%s)' % (ssl_id, scm_description(exc)),
                                  option=option,
                                  fix='give the sslId of an existing certificate', details=exc.details)
            raise

    # -- recover
    def find_orders(self, request, limit=50):
        """Orders SCM already has for ``request``: listed by common name (else first SAN),
        newest first, whose ``comments`` carry this request's token."""
        if not request.token:
            return []
        try:
            csr = cx509.load_csr(request.csr_pem, option='csr')
        except CertforgeError:
            return []
        cns = [a.value for a in csr.subject if a.oid.dotted_string == '2.5.4.3']
        if cns:
            filters = {'commonName': cns[0]}
        else:
            names = _dns_names(cx509.san_list(csr))
            if not names:
                return []
            filters = {'subjectAlternativeName': names[0]}
        items = list(self.client.iter_ssl(filters, limit=limit * 4))
        items.sort(key=lambda i: int(i.get('sslId') or i.get('id') or 0), reverse=True)
        found = []
        marker = TOKEN_PREFIX + request.token
        for item in items[:limit]:
            ssl_id = item.get('sslId') or item.get('id')
            record = self.client.get_ssl(ssl_id)
            if marker in (record.get('comments') or ''):
                found.append(Order(issuer=self.name, id=str(ssl_id), status=_order_status(record),
                                   details={'public_key': cx509.public_key_fingerprint(csr.public_key()),
                                            'scm_status': record.get('status'), 'method': 'enroll',
                                            'recovered': True}))
        found.reverse()       # oldest first: issue() adopts the last (newest)
        if not any(o.status == ORDER_PENDING for o in found) and request.replaces:
            found.extend(self._find_renewal(request, csr, cns[0] if cns else None, limit))
        return found

    def _find_renewal(self, request, csr, common_name, limit):
        """A renewal whose answer was lost: renewById copies the old record's comments (so the
        new token is not there), replace keeps the sslId.  Found from the renewed record:
        ``renewed`` set -> the newest later record for the same name; a serial that changed
        (or none while the replacement is processed) -> the record itself."""
        current_id = self._current_id(request)
        if current_id is None:
            return []
        old = self.client.get_ssl(current_id)
        public_key = cx509.public_key_fingerprint(csr.public_key())
        serial = plain_serial(old.get('serialNumber')) if old.get('serialNumber') else None
        if serial != request.replaces_serial or str(old.get('status') or '').lower() != 'issued':
            if str(old.get('status') or '').lower() in FAILED_STATUSES:
                return []
            return [Order(issuer=self.name, id=str(current_id), status=ORDER_PENDING,
                          details={'public_key': public_key, 'method': 'replace', 'replaced': True,
                                   'scm_status': old.get('status'), 'recovered': True})]
        if not old.get('renewed') or not common_name:
            return []
        items = [i for i in self.client.iter_ssl({'commonName': common_name}, limit=limit * 4)
                 if int(i.get('sslId') or i.get('id') or 0) > int(current_id)]
        items.sort(key=lambda i: int(i.get('sslId') or i.get('id') or 0), reverse=True)
        for item in items[:limit]:
            ssl_id = item.get('sslId') or item.get('id')
            record = self.client.get_ssl(ssl_id)
            if _order_status(record) == ORDER_PENDING:
                return [Order(issuer=self.name, id=str(ssl_id), status=ORDER_PENDING,
                              details={'public_key': public_key, 'method': 'renew_by_id',
                                       'renewed_from': str(current_id), 'scm_status': record.get('status'),
                                       'recovered': True})]
        return []

    # -- revoke
    def revoke(self, revocation):
        code, text = scm_reason(revocation.reason, option=self.opt('revocation_reason') if self.prefix
                                else 'revocation_reason')
        try:
            if revocation.order_id:
                self.client.revoke(revocation.order_id, code, text)
            else:
                serial = revocation.serial
                if not serial and revocation.certificate_pem:
                    serial = cx509.serial_hex(cx509.load_certificate(revocation.certificate_pem))
                if not serial:
                    raise ConfigError('nothing to revoke', option='ssl_id', fix='give ssl_id or serial')
                self.client.revoke_by_serial(serial, code, text)
        except PermanentError as exc:
            c = scm_code(exc)
            if c == -102:
                raise ConfigError('only issued certificates can be revoked (%s)' % scm_description(exc),
                                  option='ssl_id' if revocation.order_id else 'serial',
                                  fix='wait for issuance, or decline the pending order in SCM instead')
            if c in UNKNOWN_ID_CODES or exc.details.get('status') == 404:
                raise ConfigError('Sectigo knows no such certificate (%s)' % scm_description(exc),
                                  option='ssl_id' if revocation.order_id else 'serial',
                                  fix='give the sslId or serial of an issued certificate')
            if c == -159:
                return False
            raise
        return True

    def close(self):
        self.client.close()


def _order_status(record):
    """The order status of an SCM record found by a lookup: declined/rejected/invalid ->
    failed, revoked/expired -> revoked (neither can give the certificate), else pending (a poll
    collects it when Issued)."""
    low = str(record.get('status') or '').lower()
    if low in FAILED_STATUSES:
        return ORDER_FAILED
    if low in ('revoked', 'expired'):
        return ORDER_REVOKED
    return ORDER_PENDING


def scm_reason(name, option='revocation_reason'):
    """(code, text) of an RFC 5280 reason name SCM accepts; ConfigError otherwise."""
    try:
        code = reason_code(name or 'unspecified')
    except ValueError:
        code = None
    if code not in SCM_REVOCATION_CODES:
        raise ConfigError('Sectigo does not accept revocation reason %r' % (name,), option=option,
                          fix='use one of: unspecified, key_compromise, affiliation_changed, superseded, '
                              'cessation_of_operation')
    return code, REVOCATION_TEXT[code]


def _profile_multi_domain(profile):
    """True/False when the profile says whether it is multi-domain, else None."""
    for key in ('multiDomain', 'multi_domain', 'isMultiDomain'):
        if isinstance(profile.get(key), bool):
            return profile[key]
    name = _norm(profile.get('name')) + ' ' + _norm(profile.get('description'))
    if 'multi' in name or 'ucc' in name or 'san' in name.split():
        return True
    if 'single' in name or 'one wildcard' in name:
        return False
    return None


def _check_key_type(csr, profile):
    """Refuse a CSR key the profile does not allow (``keyTypes``)."""
    allowed = profile.get('keyTypes')
    if not isinstance(allowed, dict) or not allowed:
        return
    key = cx509.key_description(csr.public_key())
    if key['type'] == 'RSA':
        sizes = [str(s) for s in allowed.get('RSA') or []]
        ok = str(key['size']) in sizes
        have = 'RSA %s' % key['size']
    elif key['type'] == 'ECDSA':
        curves = [str(c).upper().replace('-', '') for c in allowed.get('EC') or allowed.get('ECDSA') or []]
        names = {'secp256r1': 'P256', 'secp384r1': 'P384', 'secp521r1': 'P521'}
        ok = names.get(key.get('curve'), key.get('curve')) in curves
        have = 'EC %s' % key.get('curve')
    else:
        ok = key['type'].upper() in [k.upper() for k in allowed]
        have = key['type']
    if not ok:
        kinds = '; '.join('%s %s' % (k, ', '.join(str(x) for x in v)) for k, v in sorted(allowed.items()))
        raise ConfigError('profile %r does not allow a %s key' % (profile.get('name'), have), option='csr',
                          fix='make the key one of: %s' % kinds)


def split_collected(text, public_key=None):
    """(leaf PEM, [chain PEMs issuer first, no self-signed root]) from a collect answer in any
    order.  The leaf is the certificate whose key matches ``public_key`` (SHA-256 of the SPKI),
    else the one that issued no other certificate; (None, []) when the key matches none."""
    certs = cx509.load_certificates(text, option='certificate')
    leaf = None
    if public_key:
        for cert in certs:
            if cx509.public_key_fingerprint(cert.public_key()) == public_key:
                leaf = cert
                break
        if leaf is None:
            return None, []
    else:
        for cert in certs:
            if not any(other is not cert and cx509.is_issued_by(other, cert) for other in certs):
                leaf = cert
                break
        leaf = leaf or certs[0]
    others = [c for c in certs if c is not leaf]
    chain = cx509.order_chain(leaf, others) if others else []
    chain = [c for c in chain if not cx509.is_self_signed(c)]
    return cx509.to_pem(leaf), [cx509.to_pem(c) for c in chain]


class Plugin:
    """Registers the built-in Sectigo issuer."""

    @hookimpl
    def certforge_issuers(self):
        return {'sectigo': SectigoIssuer}


PLUGIN = Plugin()
