"""certforge.pki.tls_scan through real ansible-playbook runs against real servers on 127.0.0.0/8.

- nginx (one instance, one port per case) serving: a good chain, an expired leaf, a leaf for
  another name, a leaf without its intermediate, an RSA-1024 leaf, a SHA-1-signed leaf (made with
  ``openssl x509 -sha1``: cryptography no longer signs with SHA-1), a self-signed leaf and a leaf
  about to expire; the blocks with the weak key and the SHA-1 signature run with
  ``ssl_ciphers DEFAULT:@SECLEVEL=0`` (nginx refuses to load them at the default level);
- a refused port and a listener that never answers (time-out), reported without stopping the scan;
- a sweep of 127.0.0.0/29 over two ports (nginx on 127.0.0.1, .2 and .3);
- STARTTLS against a real Postfix (smtp), a real Dovecot (imap), a real PostgreSQL (SSLRequest),
  and against responders written here for pop3 (STLS; Dovecot's pop3 package is not installed)
  and LDAP (the RFC 4511 StartTLS extended operation; no LDAP server is installed);
- the allow-list: a target or range outside ``allow`` fails the task before any connection (two
  counting listeners, one inside and one outside the list, accept nothing), and the same listener
  does count a connection once it is allowed;
- bad input naming the option, no traceback; check mode; the module shipped and run where the
  connection is not local (a connection plugin that is ``local`` under another name, so the action
  plugin cannot tell it from a managed host), and the module file run by itself.
"""

import datetime
import importlib.util
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name):
    key = 'certforge_integration_' + name
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, str(Path(__file__).with_name(name + '.py')))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


nginx_server = _load('nginx_server')
servers = _load('target_servers')
pg_server = _load('pg_server')

pytestmark = pytest.mark.skipif(nginx_server.NGINX is None or not shutil.which('openssl'),
                                reason='nginx or openssl is not installed (make deps)')

ENV = {'ANSIBLE_DISPLAY_TRACEBACK': 'error'}
CRASH_MARKERS = ('Traceback', 'Task failed: Module failed', 'TypeError:', 'unexpected failure')


# ---------------------------------------------------------------------------------------------
# a small PKI: root -> intermediate -> leaves of every kind
# ---------------------------------------------------------------------------------------------

class PKI:
    def __init__(self, work):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.x509.oid import NameOID
        self.x509, self.hashes, self.ser, self.ec, self.rsa, self.oid = x509, hashes, serialization, ec, rsa, NameOID
        self.work = str(work)
        os.makedirs(self.work, exist_ok=True)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self.cert('tls-scan Test Root', self.root_key, ca=True, days=365)
        self.inter_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = self.cert('tls-scan Test Issuing CA', self.inter_key, issuer=(self.root, self.root_key), ca=True,
                               days=365)
        self.root_file = self.write('root.pem', self.pem(self.root))
        self.root_and_inter_file = self.write('root-and-inter.pem', self.pem(self.root) + self.pem(self.inter))

    def write(self, name, text, mode=0o644):
        path = os.path.join(self.work, name)
        servers.write(path, text, mode)
        return path

    def pem(self, cert):
        return cert.public_bytes(self.ser.Encoding.PEM).decode()

    def key_pem(self, key):
        return key.private_bytes(self.ser.Encoding.PEM, self.ser.PrivateFormat.PKCS8,
                                 self.ser.NoEncryption()).decode()

    def cert(self, cn, key, issuer=None, sans=None, days=90, start_days=-1, ca=False):
        x509 = self.x509
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(self.oid.COMMON_NAME, cn)])
        builder = (x509.CertificateBuilder().subject_name(name)
                   .issuer_name(issuer[0].subject if issuer else name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now + datetime.timedelta(days=start_days))
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            import ipaddress
            names = []
            for san in sans:
                kind, value = san.split(':', 1)
                names.append(x509.DNSName(value) if kind == 'DNS' else x509.IPAddress(ipaddress.ip_address(value)))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(issuer[1] if issuer else key, self.hashes.SHA256())

    def leaf(self, cn, sans=None, key=None, chain=True, **kwargs):
        """(fullchain PEM, key PEM, cert) of a leaf issued by the intermediate."""
        key = key or self.ec.generate_private_key(self.ec.SECP256R1())
        cert = self.cert(cn, key, issuer=(self.inter, self.inter_key), sans=sans or ['DNS:' + cn], **kwargs)
        return self.pem(cert) + (self.pem(self.inter) if chain else ''), self.key_pem(key), cert

    def self_signed(self, cn):
        key = self.ec.generate_private_key(self.ec.SECP256R1())
        cert = self.cert(cn, key, sans=['DNS:' + cn])
        return self.pem(cert), self.key_pem(key), cert

    def sha1_leaf(self, cn):
        """A leaf signed with SHA-1 by the intermediate, made with the openssl CLI."""
        key = self.ec.generate_private_key(self.ec.SECP256R1())
        key_file = self.write(cn + '.key', self.key_pem(key), 0o600)
        inter_cert = self.write('inter.pem', self.pem(self.inter))
        inter_key = self.write('inter.key', self.key_pem(self.inter_key), 0o600)
        csr = os.path.join(self.work, cn + '.csr')
        ext = self.write(cn + '.ext', 'subjectAltName=DNS:%s\nbasicConstraints=critical,CA:FALSE\n' % cn)
        out = os.path.join(self.work, cn + '.crt')
        subprocess.run(['openssl', 'req', '-new', '-key', key_file, '-subj', '/CN=' + cn, '-out', csr],
                       check=True, capture_output=True)
        subprocess.run(['openssl', 'x509', '-req', '-in', csr, '-CA', inter_cert, '-CAkey', inter_key,
                        '-CAcreateserial', '-sha1', '-days', '30', '-extfile', ext, '-out', out],
                       check=True, capture_output=True)
        with open(out) as handle:
            cert_pem = handle.read()
        cert = self.x509.load_pem_x509_certificate(cert_pem.encode())
        return cert_pem + self.pem(self.inter), self.key_pem(key), cert


def fingerprint(cert):
    from cryptography.hazmat.primitives import hashes
    return ':'.join('%02X' % b for b in cert.fingerprint(hashes.SHA256()))


# ---------------------------------------------------------------------------------------------
# nginx with one server block per case, each on addresses/ports of its own
# ---------------------------------------------------------------------------------------------

_BLOCK = """\
    server {{
{listens}
        server_name {name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
{extra}        location / {{ return 200 "{name}\\n"; }}
    }}
"""


class Nginx(nginx_server.NginxServer):
    """``sites``: [{'name', 'cert', 'key', 'listen': [(address, port_key)], 'seclevel0': bool}];
    ports are picked per port_key at start (``self.ports[port_key]``)."""

    def __init__(self, root, sites):
        super().__init__(root)
        self.specs = sites
        self.ports = {}
        for site in sites:
            self.add_site(site['name'], site['cert'], site['key'])

    def write_config(self):
        keys = []
        for site in self.specs:
            for dummy, key in site['listen']:
                if key not in keys:
                    keys.append(key)
        self.ports = dict((key, nginx_server.free_port()) for key in keys)
        self.port = self.ports[keys[0]]
        blocks = []
        for site in self.specs:
            paths = self.sites[site['name']]
            listens = '\n'.join('        listen %s:%d ssl;' % (addr, self.ports[key]) for addr, key in site['listen'])
            extra = '        ssl_ciphers DEFAULT:@SECLEVEL=0;\n' if site.get('seclevel0') else ''
            blocks.append(_BLOCK.format(listens=listens, name=site['name'], cert=paths['cert'], key=paths['key'],
                                        extra=extra))
        with open(self.conf, 'w') as handle:
            handle.write(nginx_server._CONFIG.format(root=self.root, servers=''.join(blocks)))

    def _listening(self):
        for site in self.specs:
            for addr, key in site['listen']:
                try:
                    with socket.create_connection((addr, self.ports[key]), timeout=0.5):
                        pass
                except OSError:
                    return False
        return True


@pytest.fixture
def start_nginx(request):
    started = []

    def stop_all():
        for server in started:
            server.stop()

    request.addfinalizer(stop_all)

    def start(root, sites):
        server = Nginx(root, sites)
        started.append(server)
        return server.start()

    return start


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp('pki'))


def scan_task(name, **options):
    return {'name': name, 'certforge.pki.tls_scan': options, 'register': name}


def play(*tasks):
    return [{'name': 'tls_scan', 'hosts': 'localhost', 'gather_facts': False, 'tasks': list(tasks)}]


#: exception lines of a traceback; ansible-core 2.19 with ANSIBLE_DISPLAY_TRACEBACK=error prints its
#: own frames (these wrappers, and the collection's error taxonomy they carry) for every failed task
EXCEPTION_LINE = re.compile(r'^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)):', re.M)
HANDLED = ('AnsibleTaskError', 'AnsibleActionCapturedError', 'AnsibleModuleCapturedError', 'ConfigError')


def no_crash(result):
    for text in (result.stdout, result.stderr):
        raised = [t for t in EXCEPTION_LINE.findall(text) if t.split('.')[-1] not in HANDLED]
        assert not raised, (raised, text[-3000:])
        for marker in CRASH_MARKERS:
            if marker == 'Traceback' and 'ansible.errors.AnsibleTaskError' in text:
                continue          # ansible's own frames of a failed task, checked line by line above
            assert marker not in text, text[-3000:]


def by_port(endpoints):
    return dict(((e['port'], e['sni']), e) for e in endpoints)


# ---------------------------------------------------------------------------------------------
# nginx cases: every problem, and what is served
# ---------------------------------------------------------------------------------------------

def test_problems_of_served_chains(pki, start_nginx, tmp_path, run_playbook):
    good = pki.leaf('good.test')
    cases = {
        'good': good,
        'expired': pki.leaf('expired.test', days=-2, start_days=-30),
        'wrongname': pki.leaf('other.test'),
        'nochain': pki.leaf('nochain.test', chain=False),
        'rsa1024': pki.leaf('rsa1024.test', key=pki.rsa.generate_private_key(65537, 1024)),
        'sha1': pki.sha1_leaf('sha1.test'),
        'selfsigned': pki.self_signed('selfsigned.test'),
        'soon': pki.leaf('soon.test', days=5),
        'wildcard': pki.leaf('wild.test', sans=['DNS:*.wild.test']),
    }
    sites = [{'name': case, 'cert': cases[case][0], 'key': cases[case][1], 'listen': [('127.0.0.1', case)],
              'seclevel0': case in ('rsa1024', 'sha1')} for case in cases]
    server = start_nginx(tmp_path / 'nginx', sites)
    port = server.ports
    refused = nginx_server.free_port()
    sni = {'good': 'good.test', 'expired': 'expired.test', 'wrongname': 'wrong.test', 'nochain': 'nochain.test',
           'rsa1024': 'rsa1024.test', 'sha1': 'sha1.test', 'selfsigned': 'selfsigned.test', 'soon': 'soon.test',
           'wildcard': 'www.wild.test'}
    targets = [{'host': '127.0.0.1', 'port': port[case], 'sni': sni[case]} for case in cases]
    targets.append('127.0.0.1:%d' % refused)
    # the wildcard is one label deep only (RFC 6125): a.b.wild.test and wild.test itself do not match
    targets.append({'host': '127.0.0.1', 'port': port['wildcard'], 'server_name': 'a.b.wild.test'})
    targets.append({'host': '127.0.0.1', 'port': port['wildcard'], 'sni': 'wild.test'})

    silent = socket.socket()
    silent.bind(('127.0.0.1', 0))
    silent.listen(8)                  # accepts at the TCP level (backlog) and never says a word
    try:
        result = run_playbook(play(
            scan_task('scan', targets=targets, allow=['127.0.0.0/8'], ca_path=pki.root_file, timeout=10),
            scan_task('with_inter', targets=[{'host': '127.0.0.1', 'port': port['nochain'], 'sni': 'nochain.test'}],
                      allow=['127.0.0.1/32'], ca_path=pki.root_and_inter_file),
            scan_task('system_store', targets=['127.0.0.1:%d' % port['good']], server_names=['good.test'],
                      allow=['127.0.0.0/8']),
            scan_task('silent', targets=['127.0.0.1:%d' % silent.getsockname()[1]], allow=['127.0.0.0/8'],
                      timeout=1),
        ), env=ENV)
    finally:
        silent.close()
    no_crash(result)
    assert result.rc == 0, result
    scan = result.task('scan')
    assert scan['changed'] is False
    eps = by_port(scan['endpoints'])
    assert len(scan['endpoints']) == len(targets)

    def problems(case, name=None):
        return eps[(port[case], name or sni[case])]['problems']

    ok = eps[(port['good'], 'good.test')]
    assert ok['reachable'] and ok['handshake'] and ok['error'] is None, ok
    assert ok['problems'] == [] and ok['problem_details'] == []
    assert ok['protocol'].startswith('TLSv1.') and ok['cipher']
    assert ok['chain_source'] == 'served' and ok['chain_complete'] is True and ok['trusted'] is True
    assert [c['subject'] for c in ok['chain']] == ['CN=good.test', 'CN=tls-scan Test Issuing CA']
    leaf = ok['chain'][0]
    assert leaf['serial'] == '%X' % good[2].serial_number or leaf['serial'] == '0%X' % good[2].serial_number
    assert leaf['sha256'] == fingerprint(good[2])
    assert leaf['sans'] == ['DNS:good.test']
    assert (leaf['key_type'], leaf['key_size'], leaf['signature_hash']) == ('ECDSA', 256, 'sha256')
    assert leaf['issuer'] == 'CN=tls-scan Test Issuing CA' and 88 < leaf['days_left'] <= 90
    assert leaf['not_after'].endswith('Z') and leaf['self_signed'] is False and leaf['is_ca'] is False
    assert ok['chain'][1]['is_ca'] is True

    assert problems('expired') == ['expired']
    assert problems('wrongname') == ['name_mismatch']
    assert problems('nochain') == ['incomplete_chain', 'untrusted']
    nochain = eps[(port['nochain'], 'nochain.test')]
    assert nochain['chain_complete'] is False and len(nochain['chain']) == 1
    assert 'neither served nor a trust anchor' in nochain['problem_details'][0]['detail']
    assert problems('rsa1024') == ['weak_key']
    assert eps[(port['rsa1024'], 'rsa1024.test')]['chain'][0]['key_size'] == 1024
    assert problems('sha1') == ['sha1_signature']
    assert eps[(port['sha1'], 'sha1.test')]['chain'][0]['signature_hash'] == 'sha1'
    assert problems('selfsigned') == ['self_signed', 'untrusted']
    assert problems('soon') == ['expiring_soon']
    assert problems('wildcard') == []
    assert problems('wildcard', 'a.b.wild.test') == ['name_mismatch']
    assert problems('wildcard', 'wild.test') == ['name_mismatch']

    gone = eps[(refused, None)]
    assert gone['reachable'] is False and gone['handshake'] is False and gone['chain'] == []
    assert gone['error'].startswith('connect:'), gone
    assert scan['summary']['total'] == len(targets) and scan['summary']['errors'] == 1
    assert scan['summary']['problems']['name_mismatch'] == 3

    # the intermediate as a trust anchor: the leaf alone is then a complete, trusted chain
    alone = result.task('with_inter')['endpoints'][0]
    assert alone['problems'] == [] and alone['chain_complete'] is True and alone['trusted'] is True
    # no ca_path: the system store, which does not hold the test root
    system = result.task('system_store')['endpoints'][0]
    assert system['sni'] == 'good.test' and system['problems'] == ['untrusted'], system
    assert system['chain_complete'] is True
    quiet = result.task('silent')['endpoints'][0]
    assert quiet['reachable'] is True and quiet['handshake'] is False
    assert 'timed out' in quiet['error'], quiet


def test_cidr_sweep_two_ports(pki, start_nginx, tmp_path, run_playbook):
    cert, key, dummy = pki.leaf('sweep.test', sans=['IP:127.0.0.1', 'IP:127.0.0.2', 'IP:127.0.0.3'])
    served = [('127.0.0.1', 'a'), ('127.0.0.1', 'b'), ('127.0.0.2', 'a'), ('127.0.0.3', 'b')]
    server = start_nginx(tmp_path / 'nginx', [{'name': 'sweep.test', 'cert': cert, 'key': key, 'listen': served}])
    ports = [server.ports['a'], server.ports['b']]
    result = run_playbook(play(scan_task('sweep', cidrs=['127.0.0.0/29'], ports=ports, allow=['127.0.0.0/8'],
                                         ca_path=pki.root_file, timeout=5, concurrency=4)), env=ENV)
    no_crash(result)
    assert result.rc == 0, result
    endpoints = result.task('sweep')['endpoints']
    # 127.0.0.1 .. 127.0.0.6 (network and broadcast addresses skipped) x two ports
    assert sorted((e['address'], e['port']) for e in endpoints) == sorted(
        ('127.0.0.%d' % i, p) for i in range(1, 7) for p in ports)
    expected = set((addr, server.ports[key]) for addr, key in served)
    handshakes = set((e['address'], e['port']) for e in endpoints if e['handshake'])
    assert handshakes == expected
    for entry in endpoints:
        if entry['handshake']:
            assert entry['problems'] == [] and entry['sni'] is None, entry
        else:
            assert entry['reachable'] is False and entry['error'].startswith('connect:'), entry
    summary = result.task('sweep')['summary']
    assert (summary['total'], summary['handshakes'], summary['errors']) == (12, 4, 8)


# ---------------------------------------------------------------------------------------------
# allow-list: refused before any connection
# ---------------------------------------------------------------------------------------------

class CountingListener:
    """Counts accepted connections on ``address`` (port 0), in a thread; never answers."""

    def __init__(self, address):
        self.sock = socket.socket()
        self.sock.bind((address, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.address, self.port = address, self.sock.getsockname()[1]
        self.accepted = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop_event.is_set():
            try:
                conn, dummy = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self.stop_event.set()
        self.thread.join(5)
        self.sock.close()


def test_outside_allow_is_refused_before_any_connection(run_playbook):
    inside = CountingListener('127.0.0.1')
    outside = CountingListener('127.0.0.5')
    try:
        result = run_playbook(play(
            dict(scan_task('target_outside', targets=['127.0.0.1:%d' % inside.port, '127.0.0.5:%d' % outside.port],
                           allow=['127.0.0.1/32'], timeout=1), ignore_errors=True),
            dict(scan_task('range_outside', cidrs=['127.0.0.0/30', '127.0.0.4/30'], ports=[inside.port, outside.port],
                           allow=['127.0.0.0/30'], timeout=1), ignore_errors=True),
        ), env=ENV)
        no_crash(result)
        for name in ('target_outside', 'range_outside'):
            failed = result.task(name)
            assert result.status(name) == 'ignored', failed
            assert failed['msg'].startswith('allow:'), failed['msg']
            assert 'nothing was scanned' in failed['msg'] and 'endpoints' not in failed
        assert '127.0.0.5' in result.task('target_outside')['msg']
        assert '127.0.0.4/30' in result.task('range_outside')['msg']
        assert (inside.accepted, outside.accepted) == (0, 0)

        # the same listeners, once allowed, do see the scan (so the counters above can count)
        allowed = run_playbook(play(scan_task('allowed', targets=['127.0.0.1:%d' % inside.port,
                                                                  '127.0.0.5:%d' % outside.port],
                                              allow=['0.0.0.0/0'], timeout=1)), env=ENV)
        no_crash(allowed)
        assert allowed.rc == 0, allowed
        nginx_server.poll(lambda: inside.accepted >= 1 and outside.accepted >= 1, 10, 'the allowed scan to connect')
        assert all(e['reachable'] and not e['handshake'] for e in allowed.task('allowed')['endpoints'])
    finally:
        inside.close()
        outside.close()


def test_bad_input_names_the_option(tmp_path, run_playbook):
    listener = CountingListener('127.0.0.1')
    cases = [
        ('no_allow', dict(targets=['127.0.0.1:%d' % listener.port]), 'allow'),
        ('bad_allow', dict(targets=['127.0.0.1:%d' % listener.port], allow=['127.0.0.300/8']), 'allow'),
        ('empty_allow', dict(targets=['127.0.0.1:%d' % listener.port], allow=[]), 'allow'),
        ('too_many', dict(cidrs=['127.0.0.0/16'], ports=[listener.port], allow=['127.0.0.0/8']), 'max_targets'),
        ('concurrency', dict(targets=['127.0.0.1:%d' % listener.port], allow=['127.0.0.0/8'], concurrency=5000),
         'concurrency'),
        ('bad_port', dict(targets=['127.0.0.1:https'], allow=['127.0.0.0/8']), 'targets[0]'),
        ('bad_starttls', dict(targets=[{'host': '127.0.0.1', 'port': listener.port, 'starttls': 'ftp'}],
                              allow=['127.0.0.0/8']), 'targets[0].starttls'),
        ('no_ports', dict(cidrs=['127.0.0.0/30'], allow=['127.0.0.0/8']), 'ports'),
        ('no_ca', dict(targets=['127.0.0.1:%d' % listener.port], allow=['127.0.0.0/8'],
                       ca_path=str(tmp_path / 'missing.pem')), 'ca_path'),
        ('nothing', dict(allow=['127.0.0.0/8']), 'targets'),
    ]
    try:
        result = run_playbook(play(*[dict(scan_task(name, **options), ignore_errors=True)
                                     for name, options, dummy in cases]), env=ENV)
        no_crash(result)
        for name, dummy, option in cases:
            failed = result.task(name)
            assert result.status(name) == 'ignored', (name, failed)
            assert option in failed['msg'], (name, failed['msg'])
            assert 'endpoints' not in failed, name
        assert listener.accepted == 0
    finally:
        listener.close()


def test_check_mode_scans_the_same(pki, start_nginx, tmp_path, run_playbook):
    cert, key, dummy = pki.leaf('check.test', days=3)
    server = start_nginx(tmp_path / 'nginx', [{'name': 'check.test', 'cert': cert, 'key': key,
                                               'listen': [('127.0.0.1', 'a')]}])
    result = run_playbook(play(scan_task('scan', targets=['127.0.0.1:%d' % server.ports['a']],
                                         server_names=['check.test'], allow=['127.0.0.1/32'],
                                         ca_path=pki.root_file)), check=True, env=ENV)
    no_crash(result)
    assert result.rc == 0 and result.status('scan') == 'ok', result
    assert result.task('scan')['endpoints'][0]['problems'] == ['expiring_soon']


def test_shipped_module_gives_the_same_result(pki, start_nginx, tmp_path):
    """Where the connection is not local the action plugin ships the module: run that module file
    as ansible would on a managed host (arguments file, JSON on stdout)."""
    cert, key, dummy = pki.leaf('shipped.test', chain=False)
    server = start_nginx(tmp_path / 'nginx', [{'name': 'shipped.test', 'cert': cert, 'key': key,
                                               'listen': [('127.0.0.1', 'a')]}])
    args = tmp_path / 'args.json'
    args.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': {
        'targets': ['127.0.0.1:%d' % server.ports['a']], 'server_names': ['shipped.test'],
        'allow': ['127.0.0.1/32'], 'ca_path': pki.root_file}}))
    env = dict(os.environ, PYTHONPATH=str(REPO / 'build' / 'collections'))
    proc = subprocess.run([sys.executable, str(REPO / 'plugins' / 'modules' / 'tls_scan.py'), str(args)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out['endpoints'][0]['problems'] == ['incomplete_chain', 'untrusted'], out
    args.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': {'targets': ['127.0.0.2:1'], 'allow': ['127.0.0.1/32']}}))
    proc = subprocess.run([sys.executable, str(REPO / 'plugins' / 'modules' / 'tls_scan.py'), str(args)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    out = json.loads(proc.stdout)
    assert out['failed'] is True and out['msg'].startswith('allow:') and 'Traceback' not in proc.stdout, out


_NOT_LOCAL = """
from ansible.plugins.connection.local import DOCUMENTATION as _LOCAL_DOC
from ansible.plugins.connection.local import Connection as _Local

DOCUMENTATION = _LOCAL_DOC.replace('name: local', 'name: notlocal', 1)


class Connection(_Local):
    \"\"\"The local connection under another transport name: a managed host that is not the controller,
    as far as an action plugin can tell.\"\"\"

    transport = 'notlocal'
"""


def test_not_local_connection_ships_the_module(pki, start_nginx, tmp_path, run_playbook):
    """Through ansible-playbook with a connection that is not ``local``: the action plugin hands the
    task to the module (AnsiballZ_tls_scan.py is put on the host and run), same result."""
    cert, key, dummy = pki.leaf('remote.test', days=3)
    server = start_nginx(tmp_path / 'nginx', [{'name': 'remote.test', 'cert': cert, 'key': key,
                                               'listen': [('127.0.0.1', 'a')]}])
    plugins = tmp_path / 'connection_plugins'
    plugins.mkdir()
    (plugins / 'notlocal.py').write_text(_NOT_LOCAL)
    inventory = 'localhost ansible_connection=notlocal ansible_python_interpreter=%s\n' % sys.executable
    result = run_playbook(play(scan_task('scan', targets=['127.0.0.1:%d' % server.ports['a']],
                                         server_names=['remote.test'], allow=['127.0.0.1/32'],
                                         ca_path=pki.root_file)),
                          inventory=inventory, args=('-vvv',), env=dict(ENV, ANSIBLE_CONNECTION_PLUGINS=str(plugins)))
    no_crash(result)
    assert result.rc == 0, result
    assert 'AnsiballZ_tls_scan.py' in result.stdout, result
    assert result.task('scan')['endpoints'][0]['problems'] == ['expiring_soon']


# ---------------------------------------------------------------------------------------------
# STARTTLS: real Postfix, Dovecot and PostgreSQL; pop3 and LDAP responders written here
# ---------------------------------------------------------------------------------------------

DOVECOT_IMAP_STARTTLS = """\
instance_name = certforge-tls-scan-{port}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
auth_mechanisms = plain
passdb {{
  driver = static
  args = password=test
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/home/%u
}}
mail_location = maildir:~/Maildir
"""


class DovecotStarttls(servers.Dovecot):
    """Dovecot with a plain IMAP listener (STARTTLS) instead of IMAPS."""

    def __init__(self, root, cert_path, key_path):
        super().__init__(root, cert_path, key_path)
        servers.write(self.config, DOVECOT_IMAP_STARTTLS.format(root=self.root, port=self.port, cert=cert_path,
                                                                key=key_path))


LDAP_OID = b'1.3.6.1.4.1.1466.20037'


def _tlv(tag, value):
    assert len(value) < 128
    return bytes([tag, len(value)]) + value


class Responder:
    """A tiny STARTTLS server on 127.0.0.1 (a thread): ``pop3`` (greeting, STLS, +OK) or ``ldap``
    (one RFC 4511 ExtendedRequest for StartTLS, answered with an ExtendedResponse of
    ``result_code``), then a TLS handshake with ``cert_file``/``key_file`` when the answer was yes.
    ``seen`` records what the client sent before TLS."""

    def __init__(self, kind, cert_file, key_file, result_code=0):
        self.kind, self.result_code = kind, result_code
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert_file, key_file)
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.seen, self.handshakes, self.errors = [], 0, []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop_event.is_set():
            try:
                conn, dummy = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                if self._exchange(conn):
                    with self.ctx.wrap_socket(conn, server_side=True):
                        self.handshakes += 1
            except (OSError, ValueError, AssertionError) as exc:
                self.errors.append(repr(exc))
            finally:
                conn.close()

    def _read_exact(self, conn, size):
        data = b''
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise OSError('client closed')
            data += chunk
        return data

    def _exchange(self, conn):
        if self.kind == 'pop3':
            conn.sendall(b'+OK certforge test POP3 ready\r\n')
            line = b''
            while not line.endswith(b'\r\n'):
                line += self._read_exact(conn, 1)
            self.seen.append(line)
            if line != b'STLS\r\n':
                conn.sendall(b'-ERR unknown command\r\n')
                return False
            conn.sendall(b'+OK Begin TLS negotiation\r\n')
            return True
        # LDAP: LDAPMessage ::= SEQUENCE { messageID INTEGER, protocolOp [APPLICATION 23] ... }
        header = self._read_exact(conn, 2)
        assert header[0] == 0x30 and header[1] < 0x80, header
        body = self._read_exact(conn, header[1])
        assert body[0] == 0x02, body
        msgid = body[2:2 + body[1]]
        op = body[2 + body[1]:]
        assert op[0] == 0x77, op                         # ExtendedRequest
        inner = op[2:2 + op[1]]
        assert inner[0] == 0x80, inner                   # requestName [0]
        name = inner[2:2 + inner[1]]
        self.seen.append(name)
        diag = b'' if self.result_code == 0 else b'StartTLS is not offered here'
        result = (_tlv(0x0A, bytes([self.result_code])) + _tlv(0x04, b'') + _tlv(0x04, diag)
                  + (_tlv(0x8A, LDAP_OID) if self.result_code == 0 else b''))
        message = _tlv(0x02, msgid) + _tlv(0x78, result)
        conn.sendall(_tlv(0x30, message))
        return self.result_code == 0 and name == LDAP_OID

    def close(self):
        self.stop_event.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.skipif(not (servers.which('postfix') and servers.which('dovecot') and servers.which('script')),
                    reason='postfix, dovecot or script is not installed (make deps)')
def test_starttls_protocols(pki, run_playbook):
    ok_pg, why = pg_server.available()
    if not ok_pg:
        pytest.skip(why)
    import pwd
    root = servers.shared_root('certforge-tls-scan-')
    cert, key, leaf = pki.leaf('mail.test')
    cert_file = os.path.join(root, 'mail.crt')
    key_file = os.path.join(root, 'mail.key')
    servers.write(cert_file, cert)
    servers.write(key_file, key, 0o600)
    pg_dir = os.path.join(root, 'pg')
    os.makedirs(pg_dir)
    os.chmod(pg_dir, 0o755)
    pg_cert, pg_key = os.path.join(pg_dir, 'server.crt'), os.path.join(pg_dir, 'server.key')
    servers.write(pg_cert, cert)
    servers.write(pg_key, key, 0o600)
    if os.geteuid() == 0:
        entry = pwd.getpwnam('postgres')
        os.chown(pg_key, entry.pw_uid, entry.pw_gid)
    postfix = servers.Postfix(os.path.join(root, 'postfix'), cert_file, key_file)
    dovecot = DovecotStarttls(os.path.join(root, 'dovecot'), cert_file, key_file)
    postgres = pg_server.PostgresServer(settings={'ssl': 'on', 'ssl_cert_file': pg_cert, 'ssl_key_file': pg_key})
    plain_pg = pg_server.PostgresServer()
    pop3 = Responder('pop3', cert_file, key_file)
    ldap = Responder('ldap', cert_file, key_file)
    ldap_refusing = Responder('ldap', cert_file, key_file, result_code=2)
    try:
        postfix.start()
        dovecot.start()
        postgres.start()
        plain_pg.start()
        targets = [
            {'host': '127.0.0.1', 'port': postfix.port, 'starttls': 'smtp'},
            {'host': '127.0.0.1', 'port': dovecot.port, 'starttls': 'imap'},
            {'host': '127.0.0.1', 'port': pop3.port, 'starttls': 'pop3'},
            {'host': '127.0.0.1', 'port': ldap.port, 'starttls': 'ldap'},
            {'host': '127.0.0.1', 'port': postgres.port, 'starttls': 'postgres'},
            {'host': '127.0.0.1', 'port': ldap_refusing.port, 'starttls': 'ldap'},
            {'host': '127.0.0.1', 'port': plain_pg.port, 'starttls': 'postgres'},
            {'host': '127.0.0.1', 'port': postfix.port},          # direct TLS on an SMTP port fails, reported
        ]
        result = run_playbook(play(scan_task('scan', targets=targets, server_names=['mail.test'],
                                             allow=['127.0.0.0/8'], ca_path=pki.root_file, timeout=10)), env=ENV)
        no_crash(result)
        assert result.rc == 0, result
        endpoints = result.task('scan')['endpoints']
        assert [e['starttls'] for e in endpoints] == ['smtp', 'imap', 'pop3', 'ldap', 'postgres', 'ldap',
                                                      'postgres', 'none']
        for entry in endpoints[:5]:
            assert entry['handshake'] is True and entry['error'] is None, entry
            assert entry['problems'] == [] and entry['trusted'] is True, entry
            assert entry['chain'][0]['sha256'] == fingerprint(leaf), entry
        assert pop3.seen == [b'STLS\r\n'] and pop3.handshakes == 1, pop3.errors
        assert ldap.seen == [LDAP_OID] and ldap.handshakes == 1, ldap.errors
        refused_ldap, no_ssl_pg, direct = endpoints[5:]
        assert refused_ldap['handshake'] is False and 'resultCode 2' in refused_ldap['error'], refused_ldap
        assert 'StartTLS is not offered here' in refused_ldap['error']
        assert ldap_refusing.handshakes == 0
        assert no_ssl_pg['handshake'] is False and 'does not accept SSL' in no_ssl_pg['error'], no_ssl_pg
        assert direct['reachable'] is True and direct['handshake'] is False, direct
        assert direct['error'].startswith('handshake:'), direct
    finally:
        for thing in (pop3, ldap, ldap_refusing):
            thing.close()
        postfix.stop()
        dovecot.stop()
        postgres.stop()
        plain_pg.stop()
        shutil.rmtree(root, ignore_errors=True)
