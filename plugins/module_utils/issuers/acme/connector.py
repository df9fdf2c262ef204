# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ACME issuer connector (name ``acme``).

``submit`` places the order and starts its challenges; ``poll`` does one round (read the order,
answer what can be answered, finalize when ready, download when valid).  Neither sleeps.  The
order's state (authorizations, challenges answered or shown to the user) lives in
``Order.details``, which the order store keeps, so a later run with the same inputs continues
the same order.  The account URL and ARI answers are cached in the order store too, so a run
with nothing due sends no request at all.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import time

from ansible_collections.certforge.pki.plugins.module_utils.core import issue as core_issue
from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    CertforgeError, ConfigError, NotReadyError, PermanentError, TransientError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import IssuerConnector, hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.core.model import (
    ORDER_FAILED, ORDER_ISSUED, ORDER_PENDING, Order, RenewalWindow, reason_code,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import order_key
from ansible_collections.certforge.pki.plugins.module_utils.core.renewal import parse_time
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import challenges as chall
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import jws
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme.client import AcmeClient, parse_links

#: A wait that tells poll_until "nothing will change before the user acts": it ends the wait
#: at once and the order is returned pending.
WAIT_FOR_USER = 86400.0
DEFAULT_ARI_RETRY = 21600.0


def identifiers_from_csr(csr_pem):
    csr = cx509.load_csr(csr_pem, option='csr')
    idents = []
    for san in cx509.san_list(csr):
        kind, value = san.split(':', 1)
        if kind.upper() == 'DNS':
            idents.append({'type': 'dns', 'value': value.lower()})
        elif kind.upper() == 'IP':
            idents.append({'type': 'ip', 'value': value})
    if not idents:
        lib = cx509.require_cryptography()
        cns = csr.subject.get_attributes_for_oid(lib.oid.NameOID.COMMON_NAME)
        if cns:
            idents.append({'type': 'dns', 'value': cns[0].value.lower()})
    if not idents:
        raise ConfigError('the CSR names no DNS name or IP address', option='csr',
                          fix='put the names in the subjectAltName of the CSR')
    return idents


def load_account_key(options, option_prefix='account_key'):
    content = options.get('%s_content' % option_prefix)
    path = options.get('%s_path' % option_prefix)
    if not content and path:
        try:
            with open(os.path.expanduser(path), 'rb') as handle:
                content = handle.read()
        except (IOError, OSError) as exc:
            raise ConfigError('cannot read %s: %s' % (path, exc.strerror or exc),
                              option='%s_path' % option_prefix,
                              fix='give the path of a PEM private key on the controller')
    if not content:
        raise ConfigError('an ACME account key is required', option='%s_path' % option_prefix,
                          fix='set account_key_path or account_key_content (ECDSA P-256/P-384 or RSA)')
    return jws.AccountKey.from_pem(content, options.get('%s_passphrase' % option_prefix),
                                   option='%s_path' % option_prefix if path else '%s_content' % option_prefix)


def make_client(options, account_key=None, clock=time.monotonic, sleep=time.sleep, session=None):
    return AcmeClient(options.get('acme_directory'), account_key=account_key, session=session,
                      account_uri=options.get('account_uri'), clock=clock, sleep=sleep,
                      ca_bundle=options.get('acme_ca_bundle'),
                      validate_certs=options.get('validate_certs', True),
                      timeout=options.get('acme_timeout') or (10.0, 60.0),
                      retries=3, deadline=max(10.0, float(options.get('wait_timeout') or 60)))


class AccountCache:
    """Account URLs and ARI answers in the order store (keys ``acme-account+...`` and
    ``acme-ari+...``), so runs with nothing to do send nothing."""

    def __init__(self, store_path):
        self.store_path = store_path
        self._store = None

    @property
    def store(self):
        if self._store is None:
            self._store = core_issue.open_order_store(self.store_path)
        return self._store

    @staticmethod
    def _digest(*parts):
        return hashlib.sha256('|'.join(parts).encode('utf-8')).hexdigest()[:32]

    def _get(self, kind, ident):
        record = self.store.load(order_key(kind, ident))
        return dict(record.extra) if record is not None else None

    def _put(self, kind, ident, extra):
        self.store.record_intent(order_key(kind, ident), 'cache', token='cache', issuer='acme', extra=extra)

    def account(self, directory, thumbprint):
        data = self._get('acme-account', self._digest(directory, thumbprint))
        return (data or {}).get('account_uri')

    def save_account(self, directory, thumbprint, uri):
        self._put('acme-account', self._digest(directory, thumbprint), {'account_uri': uri})

    def forget_account(self, directory, thumbprint):
        self.store.forget(order_key('acme-account', self._digest(directory, thumbprint)))

    def ari(self, directory, cert_id, now):
        data = self._get('acme-ari', self._digest(directory, cert_id))
        if data and data.get('fresh_until', 0) > now:
            return data
        return None

    def save_ari(self, directory, cert_id, window, fresh_until):
        self._put('acme-ari', self._digest(directory, cert_id),
                  {'window': window, 'fresh_until': fresh_until})


class AcmeIssuer(IssuerConnector):
    """RFC 8555 issuer.  Options: see the ``certforge.pki.acme`` doc fragment."""

    name = 'acme'
    #: the account's orders list is searched (``find_orders``) before a first order
    searchable = True
    option_mutually_exclusive = [('account_key_path', 'account_key_content')]
    option_required_one_of = [('account_key_path', 'account_key_content')]

    #: options of acme_certificate that are not issuer options of the generic certificate module
    MODULE_ONLY = ('name', 'csr', 'csr_path', 'certificate_path', 'chain_path', 'fullchain_path',
                   'fail_on_pending', 'renew_before_days', 'renew_at_fraction', 'force', 'recover_window')

    @classmethod
    def option_spec(cls):
        """``issuer_options`` of the generic certificate module: the options of
        ``acme_certificate`` that describe the CA, the account and the order."""
        from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import modules
        spec = dict(modules.CONNECTION_OPTIONS)
        spec.update(modules.ACCOUNT_OPTIONS)
        spec.update((k, v) for k, v in modules.CERTIFICATE_SPEC.argument_spec.items() if k not in cls.MODULE_ONLY)
        return spec

    def __init__(self, options, clock=time.monotonic, sleep=time.sleep, wallclock=time.time, session=None):
        super(AcmeIssuer, self).__init__(options)
        if not self.options.get('acme_directory'):
            raise ConfigError('the ACME directory URL is required', option='acme_directory',
                              fix='set acme_directory, e.g. https://acme-v02.api.letsencrypt.org/directory')
        self.clock = clock
        self.sleep = sleep
        self.wallclock = wallclock
        self.session = session
        self.cache = AccountCache(self.options.get('order_store'))
        self.warnings = []
        self._client = None
        self._solver = None
        self._request = None
        self._presented_now = set()
        self._answered_now = set()      # challenges this run has answered (listener / file placed)

    # -- set-up ----------------------------------------------------------------------------

    def client(self, need_account=True):
        if self._client is None:
            key = load_account_key(self.options)
            self._client = make_client(self.options, key, clock=self.clock, sleep=self.sleep,
                                       session=self.session)
            self.warnings.extend(self._client.warnings)
        if need_account and not self._client.kid:
            self.ensure_account(self._client)
        return self._client

    def eab(self, client):
        o = self.options
        if o.get('eab_kid') or o.get('eab_hmac_key'):
            if not (o.get('eab_kid') and o.get('eab_hmac_key')):
                raise ConfigError('eab_kid and eab_hmac_key go together', option='eab_hmac_key',
                                  fix='give both values the CA issued')
            return o['eab_kid'], o['eab_hmac_key']
        if o.get('eab_lookup_email'):
            url = o.get('eab_lookup_url') or 'https://api.zerossl.com/acme/eab-credentials-email'
            return client.eab_lookup(o['eab_lookup_email'], url)
        return None

    def ensure_account(self, client, create=True):
        """Find the account URL: option, cache, or newAccount (created when ``create``)."""
        thumb = client.key.thumbprint()
        cached = self.cache.account(self.options['acme_directory'], thumb)
        if cached:
            client.kid = cached
            return False
        eab = None
        needs_eab = bool(client.meta.get('externalAccountRequired'))
        if create and self.options.get('terms_agreed'):
            eab = self.eab(client) if needs_eab or self.options.get('eab_kid') else None
            if needs_eab and not eab:
                try:
                    created, dummy = client.new_account(only_existing=True)
                except CertforgeError as exc:
                    if getattr(exc, 'acme_type', '') != 'accountDoesNotExist':
                        raise
                    raise ConfigError('the CA requires an external account binding (directory meta '
                                      'externalAccountRequired) and none was given', option='eab_kid',
                                      fix='set eab_kid and eab_hmac_key from the CA, or eab_lookup_email')
            else:
                created, dummy = client.new_account(contact=self.options.get('contact'),
                                                    terms_agreed=True,
                                                    eab=eab)
        else:
            created, dummy = client.new_account(only_existing=True)
        self.cache.save_account(self.options['acme_directory'], thumb, client.kid)
        return created

    def solver(self):
        if self._solver is None:
            o = self.options
            hooks = None
            if o.get('dns_hook_add'):
                hooks = chall.DnsHooks(o.get('dns_hook_add'), o.get('dns_hook_remove'),
                                       o.get('dns_propagation_command'),
                                       o.get('dns_propagation_timeout') or 120)
            self._solver = chall.Solver(o.get('challenge') or chall.HTTP01,
                                        listen_port=o.get('http01_listen_port'),
                                        listen_address=o.get('http01_listen_address') or '127.0.0.1',
                                        webroot=o.get('http01_webroot'), dns_hooks=hooks)
        return self._solver

    # -- contract --------------------------------------------------------------------------

    def check(self, request):
        """Refuse what the CA would refuse, with no request: wildcard with http-01, bad
        challenge or hook options, no identifiers."""
        self._request = request
        idents = identifiers_from_csr(request.csr_pem)
        solver = self.solver()
        if solver.challenge == chall.HTTP01:
            wild = [i['value'] for i in idents if i['value'].startswith('*.')]
            if wild:
                raise ConfigError('wildcard names (%s) cannot be validated with http-01' % ', '.join(wild),
                                  option='challenge', fix='use challenge: dns-01 with dns_hook_add')
        return idents

    def submit(self, request):
        self._request = request
        idents = self.check(request)
        client = self.client()
        replaces = None
        if request.replaces and client.directory().get('renewalInfo'):
            try:
                from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme.client import ari_cert_id
                replaces = ari_cert_id(request.replaces)
            except ConfigError:
                replaces = None
        profile = request.profile or self.options.get('profile')
        try:
            url, data, warnings = client.new_order(idents, profile=profile, replaces=replaces)
        except TransientError as exc:
            if exc.retry_after is None:
                raise
            # rate limited for longer than we may wait: pending; the next run orders again
            return Order(issuer=self.name, id=None, status=ORDER_PENDING, retry_after=exc.retry_after,
                         error=exc.msg, details={'retry_at': self.wallclock() + exc.retry_after})
        self.warnings.extend(warnings)
        order = Order(issuer=self.name, id=url, status=ORDER_PENDING,
                      details={'authorizations': data.get('authorizations') or [],
                               'finalize': data.get('finalize'), 'identifiers': idents,
                               'profile': profile, 'replaces': replaces if not warnings else None,
                               'challenges': {}, 'answered': []})
        return self._round(order, data)

    def poll(self, order):
        if not order.id:
            retry_at = (order.details or {}).get('retry_at') or 0
            remaining = retry_at - self.wallclock()
            if remaining > 0:
                raise NotReadyError('rate limited by the CA', retry_after=remaining)
            if self._request is None:
                raise NotReadyError('rate limited by the CA', retry_after=WAIT_FOR_USER)
            fresh = self.submit(self._request)
            order.id, order.status, order.details = fresh.id, fresh.status, fresh.details
            order.certificate_pem, order.chain_pem = fresh.certificate_pem, fresh.chain_pem
            order.retry_after, order.error = fresh.retry_after, fresh.error
            return order
        return self._round(order)

    def _round(self, order, data=None):
        """One round of work on ``order`` (mutated in place and returned)."""
        client = self.client()
        response = None
        if data is None:
            data, response = client.get(order.id)
        status = data.get('status')
        order.retry_after = None
        if response is not None:
            from ansible_collections.certforge.pki.plugins.module_utils.core.http import parse_retry_after
            order.retry_after = parse_retry_after(response.headers.get('Retry-After'))
        if status == 'pending':
            self._authorizations(order, client)
        if status == 'ready':
            data, response = client.finalize(data.get('finalize') or order.details['finalize'], self._csr_der())
            status = data.get('status')
        if status == 'valid' and data.get('certificate'):
            cert, chain, info = client.download(data['certificate'], self.options.get('preferred_chain'))
            order.status = ORDER_ISSUED
            order.certificate_pem = cert
            order.chain_pem = chain
            order.details['chain_info'] = info
            order.retry_after = None
            self.cleanup(order)
        elif status == 'invalid':
            order.status = ORDER_FAILED
            self.cleanup(order)
            raise self._failure(client, data)
        return order

    def _csr_der(self):
        if self._request is None:
            raise PermanentError('the CSR of this order is not known in this run', option='csr',
                                 fix='run the module again with the same inputs')
        lib = cx509.require_cryptography()
        csr = cx509.load_csr(self._request.csr_pem, option='csr')
        return csr.public_bytes(lib.serialization.Encoding.DER)

    def _authorizations(self, order, client):
        solver = self.solver()
        answer = []
        again = set()            # answered by an earlier (killed) run, answered again now
        waiting_for_user = False
        for url in order.details.get('authorizations') or []:
            authz, dummy = client.get(url)
            if authz.get('status') == 'valid':
                continue
            if authz.get('status') != 'pending':
                raise self._authz_failure(authz)
            selected = solver.pick(authz)
            info = solver.describe(authz, selected, client.key, client.kid)
            order.details['challenges'][url] = info
            if selected.get('status') == 'valid':
                continue
            if selected.get('status') == 'invalid':
                raise self._authz_failure(authz)
            if info['url'] in order.details['answered'] or selected.get('status') == 'processing':
                # answered by this run, or by a run that was killed (its listener died with it):
                # place the answer again so the CA can still validate; respond only while the CA
                # has not seen the response (still pending)
                if info['url'] not in self._answered_now and solver.can_fulfil(info['type']):
                    solver.fulfil(info)
                    self._answered_now.add(info['url'])
                    if selected.get('status') == 'pending':
                        answer.append(info)
                        again.add(info['url'])
                continue
            if solver.can_fulfil(info['type']):
                solver.fulfil(info)
                answer.append(info)
            elif order.details.get('presented') and url not in self._presented_now:
                answer.append(info)           # shown in an earlier run: the user has set it up
            else:
                self._presented_now.add(url)
                waiting_for_user = True
        if waiting_for_user:
            order.details['presented'] = True
            order.retry_after = WAIT_FOR_USER
            return
        if answer:
            solver.ready(clock=self.clock, sleep=self.sleep)
            for info in answer:
                try:
                    client.respond(info['url'])
                except (PermanentError, ConfigError):
                    # answered again for a killed run: the CA may have finished validating in
                    # the meantime ("cannot update challenge with status valid"); the next
                    # round reads the real status
                    if info['url'] not in again:
                        raise
                self._answered_now.add(info['url'])
                if info['url'] not in order.details['answered']:
                    order.details['answered'].append(info['url'])

    def _authz_failure(self, authz):
        ident = (authz.get('identifier') or {}).get('value')
        errors = []
        for challenge in authz.get('challenges') or []:
            err = challenge.get('error')
            if err:
                kind = (err.get('type') or '').split(':')[-1]
                errors.append('%s %s: %s' % (challenge.get('type'), kind, err.get('detail')))
        return PermanentError('validation of %s failed (authorization %s): %s'
                              % (ident, authz.get('status'), '; '.join(errors) or 'no detail given'),
                              option='challenge',
                              fix='make the challenge answer reachable by the CA (see the CA\'s error), '
                                  'then run again: a new order is placed',
                              details={'identifier': ident, 'errors': errors})

    def _failure(self, client, data):
        for url in data.get('authorizations') or []:
            authz, dummy = client.get(url)
            if authz.get('status') == 'invalid':
                return self._authz_failure(authz)
        err = data.get('error') or {}
        return PermanentError('the ACME order is invalid: %s' % (err.get('detail') or 'no detail given'),
                              details={'error': err})

    def cleanup(self, order=None):
        """The order is done (issued or failed): remove every answer placed for it, also those
        an earlier run placed."""
        if self._solver is not None:
            if order is not None:
                self._solver.adopt((order.details.get('challenges') or {}).values())
            self._solver.cleanup()
            self.warnings.extend(self._solver.warnings)
            self._solver.warnings = []

    def close(self):
        """End of the run: answers of a still pending order stay where the CA can find them."""
        if self._solver is not None:
            self._solver.release()

    def find_orders(self, request, max_pages=10):
        """Orders of this account for exactly the request's identifiers that can still give a
        certificate (RFC 8555 section 7.1.2.1, the account's ``orders`` list): pending, ready
        or processing orders are continued instead of ordering again; a valid one is returned
        with its certificate so the core can tell whether it serves this request.  A CA
        without an orders list (the field is optional) finds nothing."""
        self._request = request
        idents = self.check(request)
        wanted = sorted((i.get('type'), str(i.get('value')).lower()) for i in idents)
        client = self.client()
        try:
            account, dummy = client.get(client.kid)
        except (PermanentError, ConfigError):
            return []
        url = account.get('orders') if isinstance(account, dict) else None
        found = []
        pages = 0
        while url and pages < max_pages:
            pages += 1
            data, response = client.get(url)
            for order_url in (data or {}).get('orders') or []:
                try:
                    order_data, dummy = client.get(order_url)
                except (PermanentError, ConfigError):
                    continue
                got = sorted((i.get('type'), str(i.get('value')).lower())
                             for i in order_data.get('identifiers') or [])
                status = order_data.get('status')
                if got != wanted or status not in ('pending', 'ready', 'processing', 'valid'):
                    continue
                order = Order(issuer=self.name, id=order_url, status=ORDER_PENDING,
                              details={'authorizations': order_data.get('authorizations') or [],
                                       'finalize': order_data.get('finalize'), 'identifiers': idents,
                                       'profile': order_data.get('profile'), 'replaces': order_data.get('replaces'),
                                       'challenges': {}, 'answered': [], 'recovered': True})
                if status == 'valid' and order_data.get('certificate'):
                    cert, chain, info = client.download(order_data['certificate'],
                                                        self.options.get('preferred_chain'))
                    order.status, order.certificate_pem, order.chain_pem = ORDER_ISSUED, cert, chain
                    order.details['chain_info'] = info
                found.append(order)
            url = (parse_links(response).get('next') or [None])[0]
        return found

    def revoke(self, revocation):
        client = self.client()
        pem = revocation.certificate_pem
        if not pem:
            raise ConfigError('the certificate to revoke is needed', option='certificate_path',
                              fix='give certificate_path or certificate_content')
        lib = cx509.require_cryptography()
        cert = cx509.load_certificate(pem, option='certificate_path')
        try:
            code = reason_code(revocation.reason or 'unspecified')
        except ValueError:
            raise ConfigError('unknown revocation reason %r' % (revocation.reason,), option='reason',
                              fix='use an RFC 5280 reason name, e.g. key_compromise or superseded')
        return client.revoke(cert.public_bytes(lib.serialization.Encoding.DER), code)

    def renewal_window(self, cert_pem):
        """The CA-advised window (ARI) when ``renewal_info`` is on, cached with Retry-After."""
        if not self.options.get('renewal_info') or not cert_pem:
            return None
        from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme.client import ari_cert_id
        try:
            cert_id = ari_cert_id(cert_pem)
        except ConfigError:
            return None
        directory = self.options['acme_directory']
        now = self.wallclock()
        cached = self.cache.ari(directory, cert_id, now)
        if cached is None:
            window, retry_after = self.client(need_account=False).renewal_info(cert_pem)
            self.cache.save_ari(directory, cert_id, window,
                                now + (retry_after if retry_after else DEFAULT_ARI_RETRY))
            cached = {'window': window}
        window = cached.get('window')
        if not window:
            return None
        return RenewalWindow(start=parse_time(window['start']), end=parse_time(window['end']),
                             explanation_url=window.get('explanationURL'))


class Plugin:
    """Registers the built-in ACME issuer."""

    @hookimpl
    def certforge_issuers(self):
        return {'acme': AcmeIssuer}


PLUGIN = Plugin()
