from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry
from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import hookimpl


class Fake:
    name = 'fake'

    def __init__(self, options):
        self.options = options


class Plugin:
    @hookimpl
    def certforge_issuers(self):
        return {'fake': Fake}


def test_issuer_lookup():
    reg = Registry([Plugin()])
    assert reg.issuer('fake', {'a': 1}).options == {'a': 1}
