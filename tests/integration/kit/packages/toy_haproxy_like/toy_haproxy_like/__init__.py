"""A combined-PEM target (haproxy style): leaf, chain and key in one 0600 file."""
from ansible_collections.certforge.pki.plugins.module_utils.sdk import (
    ConfigError, FileSpec, TargetConnector, hookimpl)


class HaproxyLike(TargetConnector):
    name = 'toy_haproxy_like'
    certificate_options = ('fullchain_path', 'key_path', 'owner', 'group')
    option_spec = {
        'validate_command': {'type': 'list', 'elements': 'str'},
        'reload_command': {'type': 'list', 'elements': 'str', 'required': True},
    }
    certificate_option_spec = {
        'combined_path': {'type': 'path'},
        'ocsp_stapling': {'type': 'bool', 'default': False},
    }

    def files(self, request):
        path = request.certificate_options.get('combined_path') or request.options.get('fullchain_path')
        if not path:
            raise ConfigError('no combined file given', option='certificate_options.combined_path',
                              fix='set certificate_options.combined_path (or fullchain_path)')
        key = self.read_private_key(request)
        body = request.certificate_pem + ''.join(request.chain_pem) + key.decode('ascii')
        return [FileSpec(path=path, content=body, mode='0600', owner=request.options.get('owner'),
                         group=request.options.get('group'), label='combined',
                         option='certificate_options.combined_path', secret=True)]

    def validate(self, applied):
        if self.options.get('validate_command'):
            self.run(self.options['validate_command'] + [i.plan.files[0].path for i in applied],
                     'target_options.validate_command', 'config test')

    def reload(self, applied):
        self.run(self.options['reload_command'], 'target_options.reload_command', 'reload')
        return True

    def verify(self, applied):
        return None


@hookimpl
def certforge_targets():
    return {'toy_haproxy_like': HaproxyLike}
