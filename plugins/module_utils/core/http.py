# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One HTTP client for every CA connector: a requests Session factory and a retrying
``request()`` that maps failures to ``core.errors``.

- Timeouts on every call; TLS verification on by default (CA bundle, client certificate).
- Retries with backoff on 429/502/503/504 and connection errors, honouring ``Retry-After``
  (seconds or HTTP date), bounded by a retry count and a total deadline.  Clock and sleep
  are injectable (``core.polling``), so tests never sleep.
- Only idempotent methods are retried after a lost answer.  POST (and PATCH) is retried only
  when the request provably never reached the server (connection refused or connect
  timeout) or the server said 429/503; a lost answer raises TransientError with
  ``details['request_sent'] == 'unknown'`` so the caller recovers with ``find_orders``.
- Every error message is redacted: given secrets, sensitive header values, auth passwords,
  proxy credentials and query strings become ``********``; headers are never quoted.

requests is imported lazily (only when a session is made); check ``HAS_REQUESTS`` first and
fail with ``missing_required_lib('requests')``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import email.utils
import math
import os
import re
import time
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    AuthError, ConfigError, PermanentError, TransientError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.polling import Deadline, Schedule

# Whether requests is importable, found without importing it (about 0.1 s per module call).
try:
    import importlib.util
    HAS_REQUESTS = importlib.util.find_spec('requests') is not None
except (ImportError, ValueError):  # pragma: no cover
    HAS_REQUESTS = False
REQUESTS_IMPORT_ERROR = None if HAS_REQUESTS else 'No module named requests'

REDACTED = '********'
DEFAULT_TIMEOUT = (10.0, 60.0)
DEFAULT_RETRIES = 5
DEFAULT_DEADLINE = 120.0
DEFAULT_USER_AGENT = 'certforge.pki'
IDEMPOTENT_METHODS = frozenset(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS'])
RETRY_STATUSES = frozenset([429, 502, 503, 504])
#: Statuses that prove a non-idempotent request was not processed.
UNPROCESSED_STATUSES = frozenset([429, 503])
#: A header whose lower-cased name contains one of these is never shown and its value is redacted.
SENSITIVE_HEADER_WORDS = ('authorization', 'password', 'passwd', 'secret', 'token', 'api-key',
                          'apikey', 'api_key', 'cookie', 'login', 'credential')
#: Default module option names used in errors; override per connector with ``option_names``.
DEFAULT_OPTION_NAMES = {
    'ca_bundle': 'ca_bundle', 'validate_certs': 'validate_certs', 'client_cert': 'client_cert',
    'client_key': 'client_key', 'proxy': 'proxy', 'timeout': 'timeout', 'retries': 'retries',
    'deadline': 'deadline', 'auth': None,
}
_MAX_PROBLEM = 400
_OBJ_REPR = re.compile(r'<[^<>]*? object at 0x[0-9a-fA-F]+>:?\s*')


def _requests():
    """Import requests on first use.  Callers check ``HAS_REQUESTS`` and use
    ``missing_required_lib``; this ConfigError is the backstop, never a traceback."""
    try:
        import requests
    except ImportError as exc:
        raise ConfigError('the Python library requests is required on the controller (%s)' % exc,
                          fix='install requests for the Python that runs Ansible on the '
                              'controller (pip install requests)')
    return requests


def redact(text, secrets):
    """``text`` with every secret (longest first, also URL-encoded) replaced by ``********``."""
    if text is None:
        return text
    text = str(text)
    variants = set()
    for secret in secrets or ():
        if secret is None or isinstance(secret, bool):
            continue
        secret = secret.decode('utf-8', 'replace') if isinstance(secret, bytes) else str(secret)
        if not secret:
            continue
        variants.add(secret)
        variants.add(quote(secret, safe=''))
        variants.add(quote(secret, safe='').replace('%20', '+'))
    for secret in sorted(variants, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _redact_data(value, secrets):
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: _redact_data(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_data(v, secrets) for v in value]
    return value


def is_sensitive_header(name):
    low = str(name).lower()
    return any(word in low for word in SENSITIVE_HEADER_WORDS)


def safe_url(url):
    """``url`` without credentials and query string (for messages)."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return '(unparsable URL)'
    host = parts.hostname or ''
    if ':' in host:
        host = '[%s]' % host
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (':%d' % port if port else '')
    return urlunsplit((parts.scheme, netloc, parts.path, '', ''))


def _url_secrets(url):
    """Password, whole query string and values of sensitive query parameters of ``url``."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return [str(url)]
    found = [parts.password, parts.query]
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if is_sensitive_header(name) or any(w in name.lower() for w in ('key', 'sig')):
            found.append(value)
    return [s for s in found if s]


def parse_retry_after(value, now=None):
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), or None
    when absent or unparsable.  ``now`` is a wall-clock timestamp (``time.time()``)."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def _json(response):
    try:
        return response.json()
    except ValueError:
        return None


def problem_text(response):
    """A one-line description of an error body: RFC 7807 problem (title/detail/type and
    subproblems), ``{code, description}``, ``message``/``error`` fields, else the text."""
    data = _json(response)
    if isinstance(data, dict):
        parts = []
        for key in ('title', 'detail', 'description', 'message', 'error_description', 'error'):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get('message') or value.get('detail') or value.get('description')
            if isinstance(value, str) and value.strip() and value.strip() not in parts:
                parts.append(value.strip())
        for sub in data.get('subproblems') or []:
            if isinstance(sub, dict) and sub.get('detail'):
                ident = (sub.get('identifier') or {}).get('value') if isinstance(
                    sub.get('identifier'), dict) else None
                parts.append('%s%s' % ('%s: ' % ident if ident else '', sub['detail']))
        text = '; '.join(parts)
        if data.get('code') is not None:
            text = ('code %s: %s' % (data['code'], text)).rstrip(': ')
        if isinstance(data.get('type'), str):
            text = '%s [%s]' % (text, data['type']) if text else data['type']
        if text:
            return text[:_MAX_PROBLEM]
    try:
        body = response.text or ''
    except Exception:  # pragma: no cover - undecodable body
        body = ''
    if 'html' in (response.headers.get('Content-Type') or '').lower():
        match = re.search(r'<title[^>]*>(.*?)</title>', body, re.S | re.I)
        body = match.group(1) if match else ''
    return ' '.join(body.split())[:_MAX_PROBLEM]


def _problem_details(response):
    data = _json(response)
    details = {'status': response.status_code}
    if isinstance(data, dict):
        for key in ('type', 'title', 'detail', 'code', 'description', 'message', 'subproblems'):
            if key in data:
                details[key] = data[key]
    return details


class HttpSettings:
    """What ``request()`` needs beyond the Session; attached as ``session.certforge``."""

    def __init__(self, timeout=DEFAULT_TIMEOUT, retries=DEFAULT_RETRIES, deadline=DEFAULT_DEADLINE,
                 verify=True, cert=None, secrets=(), option_names=None, backoff=None,
                 clock=time.monotonic, sleep=time.sleep, wallclock=time.time):
        self.timeout = timeout
        self.retries = retries
        self.deadline = deadline
        self.verify = verify
        self.cert = cert
        self.secrets = list(secrets or ())
        self.option_names = dict(DEFAULT_OPTION_NAMES, **(option_names or {}))
        self.backoff = backoff if backoff is not None else Schedule.exponential(base=2, max_delay=30)
        self.clock = clock
        self.sleep = sleep
        self.wallclock = wallclock
        self.warnings = []


def _option(names, key):
    return names.get(key, DEFAULT_OPTION_NAMES.get(key))


def _check_timeout(timeout, option):
    values = timeout if isinstance(timeout, (list, tuple)) else (timeout,)
    ok = len(values) in (1, 2)
    try:
        numbers = tuple(float(v) for v in values if not isinstance(v, bool))
    except (TypeError, ValueError):
        numbers = ()
    if not ok or len(numbers) != len(values) or not all(math.isfinite(n) and n > 0 for n in numbers):
        raise ConfigError('must be a positive number of seconds or a (connect, read) pair, got %r'
                          % (timeout,), option=option, fix='for example 30 or [10, 60]')
    return numbers if len(numbers) == 2 else numbers[0]


def _check_file(path, option, what):
    path = os.path.expanduser(str(path))
    if not os.path.exists(path):
        raise ConfigError('%s %s does not exist' % (what, path), option=option,
                          fix='give the path of a readable PEM file on the controller')
    if not os.access(path, os.R_OK):
        raise ConfigError('%s %s is not readable' % (what, path), option=option,
                          fix='make it readable by the user running the module')
    return path


def make_session(timeout=DEFAULT_TIMEOUT, retries=DEFAULT_RETRIES, deadline=DEFAULT_DEADLINE,
                 ca_bundle=None, validate_certs=True, client_cert=None, proxy=None,
                 user_agent=DEFAULT_USER_AGENT, redact=(), headers=None, option_names=None,
                 backoff=None, clock=time.monotonic, sleep=time.sleep, wallclock=time.time,
                 trust_env=True):
    """A configured ``requests.Session``; its retry policy is ``session.certforge``.

    ``timeout``: seconds or (connect, read).  ``retries``: retries after the first attempt.
    ``deadline``: total seconds for one ``request()`` including waits.  ``ca_bundle``: PEM
    file or directory.  ``client_cert``: combined PEM path or (cert, key) paths (unencrypted
    key).  ``proxy``: URL for http and https.  ``redact``: secrets to hide in errors.
    ``option_names``: module option names used in errors (see ``DEFAULT_OPTION_NAMES``).
    ``backoff``: a polling Schedule for waits without Retry-After.  Warnings (such as
    ``validate_certs=False``) are in ``session.certforge.warnings``.
    """
    names = dict(DEFAULT_OPTION_NAMES, **(option_names or {}))
    timeout = _check_timeout(timeout, _option(names, 'timeout'))
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError('must be a whole number >= 0, got %r' % (retries,),
                          option=_option(names, 'retries'), fix='for example 5')
    try:
        deadline = float(deadline)
    except (TypeError, ValueError):
        deadline = -1.0
    if not math.isfinite(deadline) or deadline < 0:
        raise ConfigError('must be a number of seconds >= 0', option=_option(names, 'deadline'),
                          fix='for example 120')
    secrets = [s for s in (redact or ()) if s]
    warnings = []
    if validate_certs:
        verify = _check_file(ca_bundle, _option(names, 'ca_bundle'), 'CA bundle') if ca_bundle else True
    else:
        verify = False
        warnings.append('%s is false: the CA API certificate is not checked; use it only for '
                        'testing' % _option(names, 'validate_certs'))
    cert = None
    if client_cert:
        if isinstance(client_cert, (list, tuple)):
            if len(client_cert) != 2 or not client_cert[0]:
                raise ConfigError('must be a PEM path or a (certificate, key) pair',
                                  option=_option(names, 'client_cert'),
                                  fix='give the client certificate and key paths')
            cert_path = _check_file(client_cert[0], _option(names, 'client_cert'),
                                    'client certificate')
            if client_cert[1]:
                cert = (cert_path, _check_file(client_cert[1], _option(names, 'client_key'),
                                               'client key'))
            else:
                cert = cert_path
        else:
            cert = _check_file(client_cert, _option(names, 'client_cert'), 'client certificate')
    proxies = None
    if proxy:
        parts = urlsplit(str(proxy))
        if not parts.scheme or not parts.netloc:
            raise ConfigError('%s is not a proxy URL' % safe_url(proxy), option=_option(names, 'proxy'),
                              fix='for example http://proxy.example.com:3128')
        secrets.extend(s for s in (parts.password, parts.username) if s)
        proxies = {'http': str(proxy), 'https': str(proxy)}

    requests = _requests()
    session = requests.Session()
    session.trust_env = bool(trust_env)
    adapter_cls = requests.adapters.HTTPAdapter
    session.mount('https://', adapter_cls(max_retries=0))
    session.mount('http://', adapter_cls(max_retries=0))
    session.verify = verify
    session.cert = cert
    if proxies:
        session.proxies.update(proxies)
    session.headers['User-Agent'] = user_agent or DEFAULT_USER_AGENT
    session.headers.update(headers or {})
    session.certforge = HttpSettings(timeout=timeout, retries=retries, deadline=deadline,
                                     verify=verify, cert=cert, secrets=secrets,
                                     option_names=names, backoff=backoff, clock=clock,
                                     sleep=sleep, wallclock=wallclock)
    session.certforge.warnings.extend(warnings)
    return session


def _secrets_for(session, settings, url, kwargs):
    secrets = list(settings.secrets)
    for headers in (session.headers, kwargs.get('headers') or {}):
        secrets.extend(v for k, v in headers.items() if v and is_sensitive_header(k))
    for auth in (session.auth, kwargs.get('auth')):
        if isinstance(auth, (list, tuple)) and len(auth) == 2:
            secrets.append(auth[1])
        elif auth is not None and hasattr(auth, '__dict__'):
            secrets.extend(v for k, v in vars(auth).items()
                           if isinstance(v, str) and v and is_sensitive_header(k))
    for proxy in (kwargs.get('proxies') or {}).values():
        secrets.extend(_url_secrets(proxy))
    secrets.extend(_url_secrets(url))
    return secrets


def _describe(exc):
    """A short reason from a requests/urllib3 exception chain."""
    reason = exc
    for dummy in range(4):
        inner = reason.args[0] if getattr(reason, 'args', None) else None
        inner = getattr(inner, 'reason', inner)
        if isinstance(inner, BaseException) and inner is not reason:
            reason = inner
        else:
            break
    text = _OBJ_REPR.sub('', str(reason)) or type(reason).__name__
    return ' '.join(text.split())[:_MAX_PROBLEM]


def _never_sent(exc, requests):
    """True when the connection failed before any byte of the request was sent."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, (requests.exceptions.ProxyError, requests.exceptions.SSLError)):
        return False
    try:
        from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
    except ImportError:  # pragma: no cover
        return False
    inner = exc.args[0] if exc.args else None
    inner = getattr(inner, 'reason', inner)
    return isinstance(inner, (NewConnectionError, ConnectTimeoutError))


_VERIFY_WORDS = ('certificate verify failed', 'hostname mismatch', "doesn't match",
                 'does not match', 'self signed', 'self-signed', 'unable to get local issuer')
_CLIENT_CERT_WORDS = ('alert certificate required', 'alert bad certificate', 'alert unknown ca',
                      'alert certificate unknown', 'alert certificate expired',
                      'alert certificate revoked', 'alert access denied')


def _tls_error(exc, method, url, settings, secrets):
    """ConfigError / AuthError for TLS failures we can name; None for the rest."""
    text = _describe(exc)
    low = str(exc).lower()
    names = settings.option_names
    if any(word in low for word in _VERIFY_WORDS):
        bundle = settings.verify if isinstance(settings.verify, str) else None
        option = _option(names, 'ca_bundle')
        if bundle:
            fix = ('%s (%s) does not hold the CA that issued the server certificate of %s: put '
                   'that CA (PEM) in it, and check the URL host name' % (option, bundle, safe_url(url)))
        else:
            fix = ('set %s to a PEM file with the CA that issued the server certificate of %s '
                   '(%s: false only for testing)' % (option, safe_url(url),
                                                     _option(names, 'validate_certs')))
        return ConfigError(redact('TLS verification failed for %s %s: %s'
                                  % (method, safe_url(url), text), secrets),
                           option=option, fix=redact(fix, secrets),
                           details={'url': safe_url(url)})
    if any(word in low for word in _CLIENT_CERT_WORDS):
        return AuthError(redact('the server refused the TLS client certificate for %s %s: %s'
                                % (method, safe_url(url), text), secrets),
                         option=_option(names, 'client_cert'),
                         fix='give a client certificate (and key) the server trusts',
                         details={'url': safe_url(url)})
    return None


def error_for_response(response, method=None, secrets=(), option_names=None, attempts=1,
                       retry_after=None):
    """The ``core.errors`` exception for an HTTP error response: 401/403 AuthError,
    429/5xx TransientError (with ``retry_after``), other 4xx PermanentError.  The message
    holds the problem text (redacted); ``details`` the parsed problem fields."""
    names = dict(DEFAULT_OPTION_NAMES, **(option_names or {}))
    method = (method or getattr(response.request, 'method', None) or 'HTTP').upper()
    url = safe_url(response.url)
    status = response.status_code
    problem = problem_text(response)
    head = '%s %s -> HTTP %d%s' % (method, url, status,
                                   ' %s' % response.reason if response.reason else '')
    if attempts > 1:
        head += ' (after %d attempts)' % attempts
    msg = redact('%s: %s' % (head, problem) if problem else head, secrets)
    details = _redact_data(_problem_details(response), secrets)
    details['url'] = url
    details['attempts'] = attempts
    if status in (401, 403):
        return AuthError(msg, option=_option(names, 'auth'),
                         fix='check the credentials and that the account may use this API',
                         details=details)
    if status == 429 or status >= 500:
        if retry_after is None:
            retry_after = parse_retry_after(response.headers.get('Retry-After'))
        details['retry_after'] = retry_after
        return TransientError(msg, retry_after=retry_after,
                              fix='the server is busy or failing; run again later (a pending '
                                  'order is resumed)', details=details)
    return PermanentError(msg, details=details)


def request(session, method, url, accept=(), retries=None, deadline=None, **kwargs):
    """Send one request with the session's retry policy; return the ``requests.Response``.

    Responses below 400 and statuses in ``accept`` are returned; others raise (see
    :func:`error_for_response`).  ``retries``/``deadline`` override the session's.  Other
    keyword arguments go to ``session.request`` (``json``, ``data``, ``headers``, ...).
    """
    requests = _requests()
    settings = getattr(session, 'certforge', None) or HttpSettings()
    method = str(method).upper()
    retries = settings.retries if retries is None else retries
    limit = Deadline(settings.deadline if deadline is None else deadline, clock=settings.clock)
    secrets = _secrets_for(session, settings, url, kwargs)
    kwargs.setdefault('timeout', settings.timeout)
    kwargs.setdefault('verify', settings.verify)   # beats REQUESTS_CA_BUNDLE from the environment
    if settings.cert is not None:
        kwargs.setdefault('cert', settings.cert)
    idempotent = method in IDEMPOTENT_METHODS
    attempt = 0
    while True:
        attempt += 1
        response = None
        retry_after = None
        try:
            response = session.request(method, url, **kwargs)
        except requests.exceptions.SSLError as exc:
            named = _tls_error(exc, method, url, settings, secrets)
            if named is not None:
                raise named
            failure = exc
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            # a verification failure wrapped in another connection error (a proxy tunnel,
            # urllib3's retries) is still a trust problem: name the CA-bundle option
            named = _tls_error(exc, method, url, settings, secrets)
            if named is not None:
                raise named
            failure = exc
        else:
            status = response.status_code
            if status < 400 or status in accept:
                return response
            # an idempotent request is retried on any 5xx (a 500 on a GET changes nothing);
            # a POST only when the status proves it was not processed
            retryable = ((idempotent and (status in RETRY_STATUSES or status >= 500))
                         or status in UNPROCESSED_STATUSES)
            if not retryable:
                error = error_for_response(response, method, secrets, settings.option_names,
                                           attempt)
                if not idempotent and status >= 500 and status not in UNPROCESSED_STATUSES:
                    error.details['request_sent'] = 'unknown'
                raise error
            retry_after = parse_retry_after(response.headers.get('Retry-After'),
                                            now=settings.wallclock())
            failure = None
        if failure is not None and not idempotent and not _never_sent(failure, requests):
            raise TransientError(
                redact('%s %s: no answer (%s); the server may have processed the request'
                       % (method, safe_url(url), _describe(failure)), secrets),
                fix='look the order up at the CA before submitting again (the next run does)',
                details={'url': safe_url(url), 'request_sent': 'unknown', 'attempts': attempt})
        wait = retry_after if retry_after is not None else settings.backoff.delay(attempt - 1)
        if attempt > retries or not limit.allows(wait):
            if response is not None:
                raise error_for_response(response, method, secrets, settings.option_names,
                                         attempt, retry_after)
            raise TransientError(
                redact('%s %s failed after %d attempt%s: %s'
                       % (method, safe_url(url), attempt, '' if attempt == 1 else 's',
                          _describe(failure)), secrets),
                fix='check the URL, proxy and network; run again later',
                details={'url': safe_url(url), 'attempts': attempt,
                         'request_sent': 'no' if _never_sent(failure, requests) else 'unknown'})
        if response is not None:
            response.close()
        settings.sleep(wait)


class HttpClient:
    """A session plus ``request()``, with an optional ``base_url`` for relative paths.

    ``HttpClient(base_url, **make_session_options)``; ``client.get(path, ...)`` etc. return
    ``requests.Response``; ``client.json(method, path, ...)`` returns the decoded body.
    """

    def __init__(self, base_url=None, session=None, **session_options):
        self.base_url = base_url.rstrip('/') if base_url else None
        self.session = session if session is not None else make_session(**session_options)

    @property
    def settings(self):
        return self.session.certforge

    @property
    def warnings(self):
        return list(getattr(self.session, 'certforge', HttpSettings()).warnings)

    def url(self, path):
        if self.base_url and not re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*://', path):
            return '%s/%s' % (self.base_url, path.lstrip('/'))
        return path

    def request(self, method, path, **kwargs):
        return request(self.session, method, self.url(path), **kwargs)

    def get(self, path, **kwargs):
        return self.request('GET', path, **kwargs)

    def head(self, path, **kwargs):
        return self.request('HEAD', path, **kwargs)

    def post(self, path, **kwargs):
        return self.request('POST', path, **kwargs)

    def put(self, path, **kwargs):
        return self.request('PUT', path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request('DELETE', path, **kwargs)

    def json(self, method, path, **kwargs):
        """The decoded JSON body (None for an empty body); PermanentError if it is not JSON."""
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            secrets = _secrets_for(self.session, self.settings, response.url, kwargs)
            raise PermanentError(redact('%s %s -> HTTP %d: the answer is not JSON: %s' % (
                method.upper(), safe_url(response.url), response.status_code,
                ' '.join((response.text or '').split())[:200]), secrets),
                details={'url': safe_url(response.url), 'status': response.status_code})

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
