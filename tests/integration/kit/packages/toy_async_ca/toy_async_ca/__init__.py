"""An issuer for an asynchronous HTTP CA: orders stay pending for a while, then are issued."""
import json
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.certforge.pki.plugins.module_utils.sdk import (
    ORDER_FAILED, ORDER_ISSUED, ORDER_PENDING, ConfigError, IssuerConnector, Order, PermanentError,
    PolicyError, TransientError, hookimpl)


class ToyAsyncCA(IssuerConnector):
    name = 'toy_async_ca'
    option_spec = {
        'url': {'type': 'str', 'required': True},
        'api_key': {'type': 'str', 'no_log': True},
        'timeout': {'type': 'float', 'default': 10},
    }
    fingerprint_ignore = ('api_key', 'timeout')

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.options['url'].rstrip('/') + path, data=data, method=method,
                                     headers={'Content-Type': 'application/json',
                                              'X-Api-Key': self.options.get('api_key') or ''})
        try:
            with urllib.request.urlopen(req, timeout=self.options['timeout']) as answer:
                return json.loads(answer.read() or b'null')
        except urllib.error.HTTPError as exc:
            reason = json.loads(exc.read() or b'{}').get('error', exc.reason)
            if exc.code == 403:
                raise PolicyError('the CA refused the request: %s' % reason, option='csr',
                                  fix='request names the CA allows')
            if exc.code in (429, 502, 503, 504):
                raise TransientError('the CA is busy (%s)' % exc.code,
                                     retry_after=float(exc.headers.get('Retry-After') or 5))
            raise PermanentError('the CA answered %s: %s' % (exc.code, reason))
        except (urllib.error.URLError, OSError) as exc:
            raise TransientError('cannot reach the CA: %s' % getattr(exc, 'reason', exc), retry_after=5)

    def _order(self, answer):
        status = answer.get('status')
        if status == 'failed':
            raise PermanentError('the CA failed order %s: %s' % (answer['id'], answer.get('error')))
        issued = status == 'issued'
        return Order(issuer=self.name, id=answer['id'], status=ORDER_ISSUED if issued else ORDER_PENDING,
                     certificate_pem=answer.get('certificate') if issued else None,
                     chain_pem=[answer['chain']] if issued and answer.get('chain') else [],
                     retry_after=None if issued else 1.0)

    def submit(self, request):
        answer = self._call('POST', '/orders', {'csr': request.csr_pem, 'name': request.name,
                                                'token': request.token, 'replaces': request.replaces_serial})
        return self._order(answer)

    def poll(self, order):
        return self._order(self._call('GET', '/orders/%s' % urllib.parse.quote(order.id)))

    def find_orders(self, request):
        found = self._call('GET', '/orders?token=%s' % urllib.parse.quote(request.token or ''))
        return [Order(issuer=self.name, id=o['id'], status=o['status'] if o['status'] != 'failed' else ORDER_FAILED)
                for o in found]

    def revoke(self, revocation):
        if not revocation.serial:
            raise ConfigError('the serial of the certificate is needed', option='certificate')
        self._call('POST', '/revoke', {'serial': revocation.serial, 'reason': revocation.reason})

    def ca_chain(self):
        return self._call('GET', '/chain').get('chain')


@hookimpl
def certforge_issuers():
    return {'toy_async_ca': ToyAsyncCA}
