"""A combined-PEM target (haproxy style): leaf, chain and key in one 0600 file, plus the leaf
alone at certificate_path (when given) so tools and later runs can read what is served."""
import os

from ansible_collections.certforge.pki.plugins.module_utils.sdk import (
    ConfigError, FileSpec, TargetConnector, hookimpl)


class HaproxyLike(TargetConnector):
    name = 'toy_haproxy_like'
    certificate_options = ('certificate_path', 'key_path', 'owner', 'group', 'mode')
    option_spec = {
        'validate_command': {'type': 'list', 'elements': 'str'},
        'reload_command': {'type': 'list', 'elements': 'str', 'required': True},
    }
    certificate_option_spec = {
        'combined_path': {'type': 'path'},
    }

    def files(self, request):
        leaf_path = request.options.get('certificate_path')
        path = request.certificate_options.get('combined_path')
        if not path and leaf_path:
            path = os.path.splitext(leaf_path)[0] + '.combined.pem'
        if not path or path == leaf_path:
            raise ConfigError('no combined file given', option='certificate_options.combined_path',
                              fix='set certificate_options.combined_path (or certificate_path)')
        owner, group = request.options.get('owner'), request.options.get('group')
        key = self.read_private_key(request)
        body = request.certificate_pem + ''.join(request.chain_pem) + key.decode('ascii')
        specs = [FileSpec(path=path, content=body, mode='0600', owner=owner, group=group, label='combined',
                          option='certificate_options.combined_path', secret=True)]
        if leaf_path:
            specs.append(FileSpec(path=leaf_path, content=request.certificate_pem,
                                  mode=request.options.get('mode') or '0644', owner=owner, group=group,
                                  label='certificate', option='certificate_path'))
        return specs

    def validate(self, applied):
        if self.options.get('validate_command'):
            combined = [f.path for i in applied for f in i.plan.files if f.label == 'combined']
            self.run(self.options['validate_command'] + combined, 'target_options.validate_command', 'config test')

    def reload(self, applied):
        self.run(self.options['reload_command'], 'target_options.reload_command', 'reload')
        return True

    def verify(self, applied):
        return None


@hookimpl
def certforge_targets():
    return {'toy_haproxy_like': HaproxyLike}
