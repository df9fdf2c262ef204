from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry
from ansible_collections.certforge.pki.plugins.module_utils.sdk import IssuerConnector, hookimpl


class Fake(IssuerConnector):
    name = 'fake'

    def __init__(self, options):
        super(Fake, self).__init__(options)
        self.options = options

    def submit(self, request):
        raise NotImplementedError

    def poll(self, order):
        raise NotImplementedError

    def revoke(self, revocation):
        raise NotImplementedError

    def find_orders(self, request):
        return []


class Plugin:
    @hookimpl
    def certforge_issuers(self):
        return {'fake': Fake}


def test_issuer_lookup():
    reg = Registry([Plugin()])
    assert reg.issuer('fake', {'a': 1}).options == {'a': 1}
