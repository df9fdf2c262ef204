"""certforge.pki.deploy with the targets of servers that watch files: traefik (versioned pair
directory behind one link) and envoy (SDS file with the pair inline, or the link swap).

Neither server is packaged here, so the atomic switch is proven with a watcher: a thread that
reads the pair continuously, as the server would, during 200 swaps between certificates with
different keys, and checks key and certificate belong together on every read.  The SDS document
is checked against Envoy's published API (the envoy-data-plane dataclasses)."""

import os
import stat
import threading

import pytest
import yaml

SWAPS = 200


def _pair_matches(cert_pem, key_pem):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def read_through_link(link):
    """The pair as a server reads it: the link resolved once (the directory opened), both files
    read from that directory."""
    fd = os.open(link, os.O_RDONLY | os.O_DIRECTORY)
    try:
        out = []
        for name in ('tls.crt', 'tls.key'):
            handle = os.open(name, os.O_RDONLY, dir_fd=fd)
            with os.fdopen(handle, 'rb') as stream:
                out.append(stream.read())
        return out
    finally:
        os.close(fd)


def read_sds(path):
    with open(path, 'rb') as handle:
        document = yaml.safe_load(handle.read())
    certificate = document['resources'][0]['tls_certificate']
    return (certificate['certificate_chain']['inline_string'].encode(),
            certificate['private_key']['inline_string'].encode())


class Watcher:
    """Reads the pair in a loop in a thread; counts reads and mismatched pairs."""

    def __init__(self, read):
        self.read, self.reads, self.mismatched, self.errors = read, 0, 0, []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop_flag.is_set():
            try:
                cert, key = self.read()
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.errors.append(repr(exc))
                continue
            self.reads += 1
            if not _pair_matches(cert, key):
                self.mismatched += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(10)


def _pairs(test_ca, tmp_path, count=3):
    """``count`` certificates, each with a key of its own (written 0600 under tmp_path)."""
    out = []
    for index in range(count):
        issued = test_ca.issue('edge.test')
        key_path = tmp_path / ('key%d.pem' % index)
        key_path.write_text(issued.key_pem)
        key_path.chmod(0o600)
        out.append((issued, str(key_path)))
    return out


def _swap(target_cls, options, pairs, count, certificate_options, start=0):
    from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import deploy
    from ansible_collections.certforge.pki.plugins.module_utils.core.model import DeployRequest
    for index in range(start, start + count):
        issued, key_path = pairs[index % len(pairs)]
        request = DeployRequest(name='edge', certificate_pem=issued.cert_pem, chain_pem=[issued.chain_pem],
                                key_path=key_path, options={'option_prefix': ''},
                                certificate_options=dict(certificate_options))
        result = deploy(target_cls(dict(options)), [request])
        assert result['changed'], result


def _watch(name, target_cls, options, certificate_options, read, test_ca, tmp_path):
    pairs = _pairs(test_ca, tmp_path)
    _swap(target_cls, options, pairs, 1, certificate_options)        # something to read from the start
    with Watcher(read) as watcher:
        _swap(target_cls, options, pairs, SWAPS, certificate_options, start=1)
    print('WATCH %s swaps=%d reads=%d mismatched=%d' % (name, SWAPS, watcher.reads, watcher.mismatched))
    assert watcher.mismatched == 0
    assert not watcher.errors, watcher.errors[:5]
    assert watcher.reads > SWAPS // 4
    return pairs


def test_traefik_link_swap_never_shows_a_mismatched_pair(test_ca, tmp_path):
    from ansible_collections.certforge.pki.plugins.module_utils.targets.traefik import TraefikTarget
    site = tmp_path / 'dynamic'
    site.mkdir()
    link = str(site / 'edge')
    pairs = _watch('traefik', TraefikTarget, {}, {'directory': str(site)}, lambda: read_through_link(link),
                   test_ca, tmp_path)
    issued = pairs[SWAPS % len(pairs)][0]       # the last of swaps 1..SWAPS
    cert, dummy = read_through_link(link)
    assert cert.decode() == issued.cert_pem + issued.chain_pem
    versions = [e for e in os.listdir(str(site)) if e.startswith('edge.') and os.path.isdir(str(site / e))
                and not os.path.islink(str(site / e))]
    assert len(versions) <= 3, versions                    # keep_versions
    config = yaml.safe_load((site / 'edge.yml').read_text())
    assert config == {'tls': {'certificates': [{'certFile': link + '/tls.crt', 'keyFile': link + '/tls.key'}]}}
    assert stat.S_IMODE(os.stat(os.path.join(link, 'tls.key')).st_mode) == 0o600


def test_envoy_sds_file_never_shows_a_mismatched_pair(test_ca, tmp_path):
    from ansible_collections.certforge.pki.plugins.module_utils.targets.envoy import EnvoyTarget
    sds = str(tmp_path / 'edge.yaml')
    _watch('envoy', EnvoyTarget, {}, {'sds_path': sds}, lambda: read_sds(sds), test_ca, tmp_path)
    assert stat.S_IMODE(os.stat(sds).st_mode) == 0o600


def test_envoy_files_mode_link_swap_never_shows_a_mismatched_pair(test_ca, tmp_path):
    from ansible_collections.certforge.pki.plugins.module_utils.targets.envoy import EnvoyTarget
    site = tmp_path / 'tls'
    site.mkdir()
    link = str(site / 'edge')
    _watch('envoy_files', EnvoyTarget, {'mode': 'files'}, {'directory': str(site)}, lambda: read_through_link(link),
           test_ca, tmp_path)


def _validated(text):
    """The SDS document through Envoy's API dataclasses: the DiscoveryResponse, its one resource
    unpacked as an envoy.extensions.transport_sockets.tls.v3.Secret (unknown fields refused)."""
    pytest.importorskip('envoy_data_plane')
    from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import Secret
    from envoy_data_plane.envoy.service.discovery.v3 import DiscoveryResponse
    document = yaml.safe_load(text)
    response = DiscoveryResponse.from_dict(document)
    assert len(response.resources) == 1
    assert response.resources[0].type_url == 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret'
    secret = response.resources[0].unpack()
    assert isinstance(secret, Secret)
    assert Secret.from_dict(dict((k, v) for k, v in document['resources'][0].items() if k != '@type')) == secret
    return secret


@pytest.mark.parametrize('extension', ['yaml', 'json'])
def test_envoy_sds_document_matches_envoys_api(test_ca, tmp_path, extension):
    from ansible_collections.certforge.pki.plugins.module_utils.targets.envoy import EnvoyTarget
    (issued, key_path), = _pairs(test_ca, tmp_path, 1)
    sds = str(tmp_path / ('edge.' + extension))
    _swap(EnvoyTarget, {}, [(issued, key_path)], 1, {'sds_path': sds, 'secret_name': 'edge_cert'})
    with open(sds) as handle:
        secret = _validated(handle.read())
    assert secret.name == 'edge_cert'
    assert secret.tls_certificate.certificate_chain.inline_string == issued.cert_pem + issued.chain_pem
    assert secret.tls_certificate.private_key.inline_string == issued.key_pem


def test_envoy_files_mode_sds_document_matches_envoys_api(test_ca, tmp_path):
    from ansible_collections.certforge.pki.plugins.module_utils.targets.envoy import EnvoyTarget
    (issued, key_path), = _pairs(test_ca, tmp_path, 1)
    site = tmp_path / 'tls'
    site.mkdir()
    _swap(EnvoyTarget, {'mode': 'files'}, [(issued, key_path)], 1, {'directory': str(site)})
    secret = _validated((site / 'edge.sds.yaml').read_text())
    assert secret.tls_certificate.certificate_chain.filename == str(site / 'edge' / 'tls.crt')
    assert secret.tls_certificate.private_key.filename == str(site / 'edge' / 'tls.key')
    assert secret.tls_certificate.watched_directory.path == str(site)


def _play(args):
    return [{'name': 'watchers', 'hosts': 'localhost', 'gather_facts': False,
             'tasks': [{'name': 'deploy', 'certforge.pki.deploy': args, 'register': 'out'}]}]


@pytest.mark.parametrize('target', ['traefik', 'envoy'])
def test_deploy_module_check_diff_deploy_and_no_op(target, test_ca, tmp_path, run_playbook):
    (issued, key_path), = _pairs(test_ca, tmp_path, 1)
    site = tmp_path / 'site'
    site.mkdir()
    options = {'directory': str(site)} if target == 'traefik' else {'sds_path': str(site / 'edge.yaml')}
    args = {'target': target, 'name': 'edge', 'certificate': issued.cert_pem, 'chain': issued.chain_pem,
            'key_path': key_path, 'certificate_options': options}
    checked = run_playbook(_play(args), check=True, diff=True)
    assert checked.rc == 0, checked
    out = checked.task('deploy')
    assert out['changed'] and out['diff']['after']['edge']['serial'] == issued.serial_hex, out
    assert os.listdir(str(site)) == [], 'check mode wrote files'
    assert 'PRIVATE KEY' not in str(out)
    done = run_playbook(_play(args))
    assert done.rc == 0, done
    assert done.task('deploy')['changed']
    assert 'PRIVATE KEY' not in str(done.task('deploy'))
    again = run_playbook(_play(args))
    assert again.rc == 0 and not again.task('deploy')['changed'], again
