"""Every module's EXAMPLES block runs as written.

For each module in plugins/modules/ the EXAMPLES YAML is parsed and its tasks become one play
(tasks unchanged) of a real ``ansible-playbook`` run against localhost.  Before that play, a
setup play and a few prepared files make the world the example expects: the local CA it signs
with, the CSR it reads, the certificate it inspects, the variables it names (``issued``,
``vault_...``).  Remote services are local stand-ins reached through the environment
(``SECTIGO_*``), ``module_defaults`` of the play and /etc/hosts entries, never by editing a task.

The examples show the system paths an operator would use (/etc/certforge, /etc/ssl, /var/www).
So they can be run as written without touching this machine, each run happens in a private
mount namespace (``unshare --mount``; ``--user --map-root-user`` when not root) where /etc,
/var and /srv are copy-on-write overlays on a tmpfs that disappears with the run.  Where
user namespaces or overlayfs are not available the test skips and says so.

deploy's java_keystore example restarts a real Tomcat 10 (``systemctl restart tomcat10``, a
stand-in service manager in the sandbox that stops the JVM by PID and starts it again), and a
check play afterwards does a TLS handshake to see Tomcat serve the certificate the example put in
its keystore.  deploy's traefik example runs against a stand-in for Traefik's file provider
(tests/integration/traefik_file_provider.py: it watches /etc/traefik/dynamic with inotify,
reloads the tls.certificates of its YAML files on every change and serves them by SNI on 443):
Traefik is not packaged for Debian and the tests download no software, so the example's live
``verify`` handshake is answered by that stand-in, not by Traefik.

Runs with ANSIBLE_DISPLAY_TRACEBACK=error; any exception text in the output fails the module.
The terminal summary prints ``EXAMPLES modules=N tasks=M passed=K``.
"""

import ast
import base64
import datetime
import ipaddress
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
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
MODULES_DIR = REPO / 'plugins' / 'modules'
COLLECTIONS = REPO / 'build' / 'collections'
PYTHON = str(REPO / '.venv' / 'bin' / 'python') if (REPO / '.venv' / 'bin' / 'python').exists() else sys.executable
ANSIBLE_PLAYBOOK = (str(Path(PYTHON).parent / 'ansible-playbook')
                    if (Path(PYTHON).parent / 'ansible-playbook').exists() else shutil.which('ansible-playbook'))

#: directories that are copy-on-write inside the sandbox (the examples' system paths live there)
OVERLAY = ('/etc', '/var', '/srv', '/usr/local')

#: what the ACME examples talk to: one Pebble on port 443 (in the sandbox's own network
#: namespace) answers at every directory host name the examples use
ACME_NAMES = ['acme-v02.api.letsencrypt.org', 'acme.example.com']
PEBBLE = shutil.which('pebble') or '/usr/bin/pebble'
NGINX = shutil.which('nginx') or '/usr/sbin/nginx'
CHALLTESTSRV = shutil.which('pebble-challtestsrv') or '/usr/bin/pebble-challtestsrv'
CHALLTESTSRV_API = 'http://127.0.0.1:8055'
#: the system trust store of the sandbox (Debian's path; python3-requests there uses it too)
SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt'

EXCEPTION_TEXT = re.compile(
    r'\b(Traceback \(most recent call last\)|TypeError|ValueError|KeyError|AttributeError|OSError'
    r'|IndexError|UnicodeDecodeError|FileNotFoundError|IsADirectoryError|NotADirectoryError'
    r'|PermissionError|AssertionError|RuntimeError|NameError)\b:?')

MODULES = sorted(p.stem for p in MODULES_DIR.glob('*.py') if p.stem != '__init__')


def examples_of(module):
    """The EXAMPLES block of a module file as a list of tasks (read with ast, not imported)."""
    tree = ast.parse((MODULES_DIR / (module + '.py')).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'EXAMPLES' for t in node.targets):
            tasks = yaml.safe_load(node.value.value)
            assert isinstance(tasks, list) and tasks, '%s: EXAMPLES is not a list of tasks' % module
            return tasks
    raise AssertionError('%s has no EXAMPLES' % module)


# ---------------------------------------------------------------------------------------------
# the world: keys, CSRs, certificates made with cryptography
# ---------------------------------------------------------------------------------------------

def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    if isinstance(obj, x509.CertificateSigningRequest):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _name(cn, org=None):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


class World:
    """An enterprise root and a sub-CA under it; leaves for names; CSRs."""

    def __init__(self):
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca(_name('Enterprise Root CA', 'Example Org'), self.root_key, None, None)
        self.sub_key = ec.generate_private_key(ec.SECP256R1())
        self.sub = self._ca(_name('Example AD Sub CA', 'Example Org'), self.sub_key, self.root, self.root_key)

    def _ca(self, name, key, issuer, issuer_key):
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = (x509.CertificateBuilder().subject_name(name)
                   .issuer_name(issuer.subject if issuer else name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0),
                                  critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                  critical=True)
                   .add_extension(ski, critical=False))
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        return builder.sign(issuer_key or key, hashes.SHA256())

    def leaf(self, names, days=60, key=None):
        """(certificate PEM, key PEM) for DNS names / IP addresses, signed by the sub-CA (for
        ``key`` when given: a renewal that keeps the key)."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        now = _now()
        general = []
        for entry in names:
            try:
                general.append(x509.IPAddress(ipaddress.ip_address(entry)))
            except ValueError:
                general.append(x509.DNSName(entry))
        cert = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(self.sub.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName(general), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(self.sub_key, hashes.SHA256()))
        return _pem(cert), _pem(key)

    @staticmethod
    def csr(names, org=None):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder().subject_name(_name(names[0], org))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
               .sign(key, hashes.SHA256()))
        return _pem(csr), _pem(key)


class TLSEndpoint:
    """A real TLS listener on 127.0.0.1:``port`` serving one certificate chain (handshakes only)."""

    def __init__(self, port, chain_pem, key_pem, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / 'chain.pem').write_text(chain_pem)
        (directory / 'key.pem').write_text(key_pem)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(directory / 'chain.pem'), str(directory / 'key.pem'))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', port))
        self.sock.listen(8)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                conn = self.sock.accept()[0]
            except OSError:
                return
            try:
                conn.settimeout(5)
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def stop(self):
        self.stopped.set()
        try:
            # wakes the accept() of the serving thread: a close() alone leaves the socket
            # listening until accept() returns, and the next example could not bind the port
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


# ---------------------------------------------------------------------------------------------
# what each module's example expects to find
# ---------------------------------------------------------------------------------------------

class Setup:
    def __init__(self):
        self.files = {}          # absolute path -> (text, mode), written inside the sandbox
        self.local_files = {}    # path relative to the playbook directory -> text
        self.tasks = []          # setup play, run before the example play
        self.vars = {}
        self.module_defaults = {}
        self.env = {}
        self.hosts = {}          # name -> address, appended to the sandbox's /etc/hosts
        self.skip_tasks = {}     # task name -> why it cannot run here (counted, not passed)
        self.net = False         # run in a private network namespace (only its own loopback)
        self.overlay = []        # more copy-on-write directories than OVERLAY
        self.services = []       # started inside the sandbox before the playbook, stopped after
        self.phase_of = {}       # task name -> phase: run in a sandbox of its own with that phase's servers
        self.net_phases = set()  # phases in a private network namespace (all of them with ``net``)
        self.phase_tasks = {}    # phase -> more setup tasks there (what earlier example tasks made)
        self.phase_checks = {}   # phase -> tasks of a play run after the example play (failing fails the module)

    def service(self, argv, log, ports, env=None, cwd=None, phase=None, paths=(), stop=None):
        """A server started inside the sandbox; the playbook starts once every port listens and
        every path (a socket) exists.  ``phase``: only in the sandbox of that phase (servers that
        need the same port as another one, each verified on 443); ``stop``: a command run before
        the server's process is terminated."""
        self.services.append({'argv': [str(a) for a in argv], 'log': str(log), 'ports': list(ports),
                              'env': dict(env or {}), 'cwd': str(cwd) if cwd else None, 'phase': phase,
                              'paths': [str(p) for p in paths], 'stop': [str(a) for a in stop] if stop else None})

    def trust(self, ca_pem):
        """Add ``ca_pem`` to the sandbox's system trust store and point requests at it."""
        system = Path(SYSTEM_BUNDLE).read_text() if Path(SYSTEM_BUNDLE).exists() else ''
        self.files[SYSTEM_BUNDLE] = (system + ca_pem, 0o644)
        self.env.update({'REQUESTS_CA_BUNDLE': SYSTEM_BUNDLE, 'SSL_CERT_FILE': SYSTEM_BUNDLE})

    def local_ca(self, path, cn='Example Issuing CA'):
        self.tasks.append({'name': 'world: directory of %s' % path,
                           'ansible.builtin.file': {'path': os.path.dirname(path), 'state': 'directory',
                                                    'mode': '0755'}})
        self.tasks.append({'name': 'world: local CA %s' % path,
                           'certforge.pki.local_ca': {'path': path, 'common_name': cn}})


def _issued_vars(world, setup):
    cert, key = world.leaf(['www.example.com', 'example.com'])
    setup.vars['issued'] = {'certificate': cert, 'chain': _pem(world.sub)}
    setup.vars['certs'] = {'www': world.leaf(['www.example.com'])[0], 'api': world.leaf(['api.example.com'])[0]}
    return key


DNS_HOOK = '''#!%s
"""dns-01 hook of the examples: TXT records in pebble-challtestsrv, the DNS the test CA asks."""
import json, os, sys, urllib.request
host = os.environ['CERTFORGE_ACME_RECORD_NAME'].rstrip('.') + '.'
if sys.argv[1] == 'add':
    path, body = '/set-txt', {'host': host, 'value': os.environ['CERTFORGE_ACME_VALUE']}
else:
    path, body = '/clear-txt', {'host': host}
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
opener.open(urllib.request.Request('%s' + path, data=json.dumps(body).encode()), timeout=10).read()
'''


ACME_FRONT = '''
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log;
events { worker_connections 64; }
http {
    access_log {root}/logs/access.log;
    client_body_temp_path {root}/tmp/client_body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
{servers}
}
'''

ACME_SERVER = '''
    server {
        listen 127.0.0.1:443 ssl;
        server_name {name};
        ssl_certificate {root}/tls.pem;
        ssl_certificate_key {root}/tls.key;
        proxy_set_header Host $host;
        location = /directory { proxy_pass https://127.0.0.1:{port}/dir; }
        location / { proxy_pass https://127.0.0.1:{port}; }
    }
'''

#: the two CAs of the examples: a public one without and a commercial one with EAB
ACME_CAS = (('acme-v02.api.letsencrypt.org', 14000, False), ('acme.example.com', 14001, True))


def _acme(world, s, ctx):
    """One Pebble per CA of the examples (``ACME_CAS``; EAB required where the example uses it)
    behind nginx on 127.0.0.1:443, which has a TLS certificate for their host names from the test
    CA (the sandbox's system trust holds it).  nginx only routes by host name, maps the directory
    path the real CAs use (/directory) to Pebble's (/dir) and passes the Host header, so every
    URL a Pebble hands out names the example's host.
    pebble-challtestsrv is Pebble's DNS (every name is 127.0.0.1, TXT records from the dns-01
    hook); http-01 is answered on port 8080 (the examples' "port 80 forwarded to 8080")."""
    root = ctx['tmp'] / 'pebble'
    for sub in ('tmp', 'logs'):
        (root / sub).mkdir(parents=True)
    cert, key = world.leaf(ACME_NAMES)
    (root / 'tls.pem').write_text(cert + _pem(world.sub))
    (root / 'tls.key').write_text(key)
    kid, hmac = 'kid-examples', base64.urlsafe_b64encode(os.urandom(32)).rstrip(b'=').decode()
    s.net = True
    s.hosts.update((name, '127.0.0.1') for name in ACME_NAMES)
    s.trust(_pem(world.root))
    s.service([CHALLTESTSRV, '-dns01', '127.0.0.1:8053', '-http01', '', '-https01', '', '-tlsalpn01', '',
               '-management', '127.0.0.1:8055', '-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''],
              root / 'challtestsrv.log', [8053, 8055])
    servers = []
    for name, port, eab in ACME_CAS:
        config = {'listenAddress': '127.0.0.1:%d' % port, 'managementListenAddress': '127.0.0.1:%d' % (port + 1000),
                  'certificate': str(root / 'tls.pem'), 'privateKey': str(root / 'tls.key'),
                  'httpPort': 8080, 'tlsPort': 5001, 'ocspResponderURL': '', 'externalAccountBindingRequired': eab}
        if eab:
            config['externalAccountMACKeys'] = {kid: hmac}
        (root / (name + '.json')).write_text(json.dumps({'pebble': config}))
        s.service([PEBBLE, '-config', root / (name + '.json'), '-dnsserver', '127.0.0.1:8053'],
                  root / (name + '.log'), [port, port + 1000],
                  env={'PEBBLE_VA_NOSLEEP': '1', 'PEBBLE_WFE_NONCEREJECT': '0'}, cwd=root)
        servers.append(ACME_SERVER.replace('{name}', name).replace('{port}', str(port)))
    (root / 'nginx.conf').write_text(ACME_FRONT.replace('{servers}', ''.join(servers)).replace('{root}', str(root)))
    s.service([NGINX, '-c', root / 'nginx.conf', '-p', str(root) + '/', '-e', root / 'logs' / 'error.log',
               '-g', 'daemon off;'], root / 'nginx.log', [443])
    s.vars.update({'vault_eab_kid': kid, 'vault_eab_hmac_key': hmac})
    s.files['/etc/certforge/acme-account.key'] = (_pem(ec.generate_private_key(ec.SECP256R1())), 0o600)
    s.files['/usr/local/bin/dns-txt'] = (DNS_HOOK % (PYTHON, CHALLTESTSRV_API), 0o755)


NGINX_CONF = '''
worker_processes 1;
pid {pid};
error_log {logs}/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{servers}
}
'''

NGINX_SITE = '''
    server {
        listen 127.0.0.1:{port} ssl;
        server_name {name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        return 204;
    }
'''

#: ``systemctl`` of the nginx sandbox: nginx is its one unit and runs without a service manager
SYSTEMCTL = '''#!/bin/sh
case "$1 $2" in
    "start nginx"|"start nginx.service") exec nginx ;;
    "reload nginx"|"reload nginx.service") exec nginx -s reload ;;
    "is-active nginx"|"is-active nginx.service") test -s /run/nginx.pid && kill -0 "$(cat /run/nginx.pid)" ;;
    *) echo "systemctl (examples sandbox): only start, reload and is-active of nginx; got: $*" >&2; exit 1 ;;
esac
'''


def _nginx(world, s, ctx):
    """A real nginx from /etc/nginx/nginx.conf (pid /run/nginx.pid) serving www.example.com and
    api.example.com on 127.0.0.1:443, a second one from /srv/nginx (its own configuration and
    prefix) on 8443, both running in the sandbox's network namespace before the play, with the
    keys and older certificates the examples replace; ``systemctl`` starts and reloads nginx."""
    s.net = True
    s.overlay.append('/run')
    www_key = ec.generate_private_key(ec.SECP256R1())
    api_key = ec.generate_private_key(ec.SECP256R1())
    issued = world.leaf(['www.example.com', 'example.com'], key=www_key)[0]
    s.vars['issued'] = {'certificate': issued, 'chain': _pem(world.sub)}
    s.vars['certs'] = {'www': world.leaf(['www.example.com'], key=www_key)[0],
                       'api': world.leaf(['api.example.com'], key=api_key)[0]}
    sites = []
    for name, key in (('www.example.com', www_key), ('api.example.com', api_key)):
        s.files['/etc/nginx/tls/%s.crt' % name] = (world.leaf([name], days=10, key=key)[0], 0o644)
        s.files['/etc/nginx/tls/%s.key' % name] = (_pem(key), 0o600)
        sites.append(NGINX_SITE.replace('{port}', '443').replace('{name}', name)
                     .replace('{cert}', '/etc/nginx/tls/%s.crt' % name).replace('{key}', '/etc/nginx/tls/%s.key' % name))
    s.files['/etc/nginx/nginx.conf'] = (
        NGINX_CONF.replace('{pid}', '/run/nginx.pid').replace('{logs}', '/var/log/nginx')
        .replace('{tmp}', '/var/lib/nginx').replace('{servers}', ''.join(sites)), 0o644)
    s.files['/var/lib/nginx/.keep'] = ('', 0o644)
    s.files['/var/log/nginx/.keep'] = ('', 0o644)
    s.files['/srv/nginx/tls/site.crt'] = (world.leaf(['site.example.com'], days=10, key=www_key)[0], 0o644)
    s.files['/srv/nginx/tls/site.key'] = (_pem(www_key), 0o600)
    s.files['/srv/nginx/logs/.keep'] = ('', 0o644)
    site = (NGINX_SITE.replace('{port}', '8443').replace('{name}', 'site.example.com')
            .replace('{cert}', '/srv/nginx/tls/site.crt').replace('{key}', '/srv/nginx/tls/site.key'))
    s.files['/srv/nginx/nginx.conf'] = (
        NGINX_CONF.replace('{pid}', '/srv/nginx/logs/nginx.pid').replace('{logs}', '/srv/nginx/logs')
        .replace('{tmp}', '/srv/nginx/logs').replace('{servers}', site), 0o644)
    s.files['/usr/local/bin/systemctl'] = (SYSTEMCTL, 0o755)
    s.service([NGINX, '-g', 'daemon off;'], ctx['tmp'] / 'nginx.log', [443])
    s.service([NGINX, '-g', 'daemon off;', '-c', '/srv/nginx/nginx.conf', '-p', '/srv/nginx',
               '-e', '/srv/nginx/logs/error.log'], ctx['tmp'] / 'nginx-srv.log', [8443])


APACHE2_CONF = """\
ServerRoot /etc/apache2
ServerName www.example.com
PidFile /run/apache2/apache2.pid
DefaultRuntimeDir /run/apache2
Mutex file:/run/apache2 default
ErrorLog /var/log/apache2/error.log
LogLevel warn
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
User www-data
Group www-data
StartServers 1
ServerLimit 2
ThreadsPerChild 8
MaxRequestWorkers 16
SSLSessionCache shmcb:/run/apache2/ssl_scache(512000)
Listen 127.0.0.1:443 https
<VirtualHost 127.0.0.1:443>
    ServerName www.example.com
    DocumentRoot /var/www/html
    SSLEngine on
    SSLCertificateFile /etc/apache2/tls/www.example.com.crt
    SSLCertificateChainFile /etc/apache2/tls/www.example.com.chain.crt
    SSLCertificateKeyFile /etc/apache2/tls/www.example.com.key
</VirtualHost>
"""

HAPROXY_CFG = """\
global
    pidfile /run/haproxy.pid
    stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners
    stats timeout 30s

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend www
    bind 127.0.0.1:443 ssl crt /etc/haproxy/tls/www.example.com.pem
    http-request return status 200 content-type text/plain string "ok"
"""

POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = /var/spool/postfix
data_directory = /var/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.example.com
mydestination =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
local_transport = error:local delivery disabled
default_transport = error:outbound delivery disabled
relay_transport = error:outbound delivery disabled
maillog_file = /var/log/postfix.log
smtpd_tls_chain_files = /etc/postfix/tls/mail.example.com.key, /etc/postfix/tls/mail.example.com.crt
smtpd_tls_security_level = may
"""

POSTFIX_MASTER = """\
127.0.0.1:25 inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

DOVECOT_CONF = """\
base_dir = /run/dovecot
state_dir = /var/lib/dovecot
log_path = /var/log/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = </etc/dovecot/tls/mail.example.com.crt
ssl_key = </etc/dovecot/tls/mail.example.com.key
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = 993
    ssl = yes
  }
}
auth_mechanisms = plain
passdb {
  driver = static
  args = password=example
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=/var/lib/dovecot/home/%u
}
mail_location = maildir:~/Maildir
"""


def _deploy_servers(world, s, ctx):
    """The servers of the other deploy examples, from the configuration paths those examples
    name, with the key the issued certificate belongs to and an older certificate to replace:
    postfix (STARTTLS on 25) and dovecot (IMAPS on 993) next to nginx; apache, caddy and haproxy
    each in a phase of its own, since each serves www.example.com on 443 (checked there)."""
    key_pem = s.files['/etc/nginx/tls/www.example.com.key'][0]
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    logs = ctx['tmp']
    old_www = world.leaf(['www.example.com'], days=10, key=key)[0]
    old_mail = world.leaf(['mail.example.com'], days=10, key=key)[0]
    for directory, name, cert in (('postfix', 'mail', old_mail), ('dovecot', 'mail', old_mail),
                                  ('apache2', 'www', old_www), ('caddy', 'www', old_www),
                                  ('haproxy', 'www', old_www)):
        s.files['/etc/%s/tls/%s.example.com.key' % (directory, name)] = (key_pem, 0o600)
        s.files['/etc/%s/tls/%s.example.com.crt' % (directory, name)] = (cert + _pem(world.sub), 0o644)
    # postfix: the instance of /etc/postfix; master in the foreground, "postfix stop" first
    s.files['/etc/postfix/main.cf'] = (POSTFIX_MAIN, 0o644)
    s.files['/etc/postfix/master.cf'] = (POSTFIX_MASTER, 0o644)
    postfix = shutil.which('postfix', path='/usr/sbin:/sbin') or '/usr/sbin/postfix'
    s.service([postfix, '-c', '/etc/postfix', 'start-fg'], logs / 'postfix.log', [25],
              stop=[postfix, '-c', '/etc/postfix', 'stop'])
    # dovecot: /etc/dovecot/dovecot.conf (doveconf -n and doveadm reload read it)
    s.files['/etc/dovecot/dovecot.conf'] = (DOVECOT_CONF, 0o644)
    s.service([shutil.which('dovecot', path='/usr/sbin:/sbin') or '/usr/sbin/dovecot', '-F'],
              logs / 'dovecot.log', [993])
    # apache2 from /etc/apache2/apache2.conf (apache2ctl -t and graceful read it)
    s.files['/etc/apache2/apache2.conf'] = (APACHE2_CONF, 0o644)
    s.files['/etc/apache2/tls/www.example.com.crt'] = (old_www, 0o644)
    s.files['/etc/apache2/tls/www.example.com.chain.crt'] = (_pem(world.sub), 0o644)
    s.files['/var/www/html/index.html'] = ('ok\n', 0o644)
    s.files['/var/log/apache2/.keep'] = ('', 0o644)
    s.files['/run/apache2/.keep'] = ('', 0o644)
    s.service([shutil.which('apache2', path='/usr/sbin:/sbin') or '/usr/sbin/apache2', '-DFOREGROUND'],
              logs / 'apache2.log', [443], phase='apache')
    # caddy with its admin API on localhost:2019, the certificate loaded from /etc/caddy/tls
    caddy = {
        'admin': {'listen': 'localhost:2019', 'config': {'persist': False}},
        'storage': {'module': 'file_system', 'root': '/var/lib/caddy'},
        'apps': {
            'http': {'http_port': 8080, 'https_port': 443, 'servers': {'www': {
                'listen': ['127.0.0.1:443'], 'protocols': ['h1', 'h2'],
                'automatic_https': {'disable': True}, 'tls_connection_policies': [{}],
                'routes': [{'handle': [{'handler': 'static_response', 'body': 'ok\n'}]}]}}},
            'tls': {'certificates': {'load_files': [
                {'certificate': '/etc/caddy/tls/www.example.com.crt',
                 'key': '/etc/caddy/tls/www.example.com.key'}]}},
        },
    }
    s.files['/etc/caddy/caddy.json'] = (json.dumps(caddy, indent=2), 0o644)
    s.service([shutil.which('caddy') or '/usr/bin/caddy', 'run', '--config', '/etc/caddy/caddy.json'],
              logs / 'caddy.log', [443, 2019], phase='caddy',
              env={'HOME': '/var/lib/caddy', 'XDG_DATA_HOME': '/var/lib/caddy', 'XDG_CONFIG_HOME': '/etc/caddy'})
    # haproxy in master-worker mode: admin socket (runtime API) and master socket (reload)
    s.files['/etc/haproxy/haproxy.cfg'] = (HAPROXY_CFG, 0o644)
    s.files['/etc/haproxy/tls/www.example.com.pem'] = (old_www + _pem(world.sub) + key_pem, 0o600)
    s.files['/run/haproxy/.keep'] = ('', 0o644)
    s.service([shutil.which('haproxy', path='/usr/sbin:/sbin') or '/usr/sbin/haproxy', '-W', '-db',
               '-S', '/run/haproxy/master.sock,mode,600', '-f', '/etc/haproxy/haproxy.cfg'],
              logs / 'haproxy.log', [443], phase='haproxy',
              paths=['/run/haproxy/admin.sock', '/run/haproxy/master.sock'])
    for name, phase in DEPLOY_PHASES.items():
        s.phase_of[name] = phase


TOMCAT_HOME = '/usr/share/tomcat10'
#: the CATALINA_BASE of the examples' Tomcat (the package's own /var/lib/tomcat10 is left alone)
TOMCAT_BASE = '/srv/tomcat10'
TOMCAT_KEYSTORE = '/etc/tomcat10/keystore.p12'
#: what the java_keystore example's restart_command runs, in place of the systemd unit
TOMCAT_UNIT_PATH = '/usr/local/lib/certforge-examples/tomcat10-unit.py'

TOMCAT_SERVER_XML = '''<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="443" address="127.0.0.1" protocol="org.apache.coyote.http11.Http11NioProtocol"
               SSLEnabled="true" scheme="https" secure="true" maxThreads="4">
      <SSLHostConfig>
        <Certificate certificateKeystoreFile="{keystore}" certificateKeystoreType="PKCS12"
                     certificateKeystorePassword="{password}" certificateKeyAlias="tomcat"/>
      </SSLHostConfig>
    </Connector>
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false" deployOnStartup="false"/>
    </Engine>
  </Service>
</Server>
'''

TOMCAT_UNIT = r'''"""tomcat10 of the examples sandbox, in place of its systemd unit.

``run``: keeps one Tomcat JVM running (its PID in /run/tomcat10/tomcat10.pid); on SIGHUP stops
that JVM by its PID and starts a new one; on SIGTERM stops it and exits.
``restart`` (what ``systemctl restart tomcat10`` runs): asks the unit for that and returns once
a new JVM answers a TLS handshake on 127.0.0.1:443 (fails after 120 seconds)."""
import json, os, signal, socket, ssl, subprocess, sys, time
ARGV = json.loads(%(argv)r)
LOG = %(log)r
RUN = '/run/tomcat10'
JVM_PID, UNIT_PID = RUN + '/tomcat10.pid', RUN + '/unit.pid'


def pid_in(path):
    try:
        with open(path) as handle:
            return int(handle.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def write_pid(path, pid):
    with open(path + '.new', 'w') as handle:
        handle.write('%%d\n' %% pid)
    os.replace(path + '.new', path)


def start():
    with open(LOG, 'ab') as log:
        proc = subprocess.Popen(ARGV, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    write_pid(JVM_PID, proc.pid)
    return proc


def stop(proc):
    pid = pid_in(JVM_PID)
    if pid == proc.pid and proc.poll() is None:
        os.kill(pid, signal.SIGTERM)
        try:
            proc.wait(8)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(8)
    try:
        os.unlink(JVM_PID)
    except OSError:
        pass


def run():
    os.makedirs(RUN, exist_ok=True)
    wanted = []
    signal.signal(signal.SIGHUP, lambda *dummy: wanted.append('restart'))
    signal.signal(signal.SIGTERM, lambda *dummy: wanted.append('stop'))
    write_pid(UNIT_PID, os.getpid())
    proc = start()
    while True:
        if 'stop' in wanted:
            stop(proc)
            return 0
        if wanted:
            del wanted[:]
            stop(proc)
            proc = start()
        if proc.poll() is not None:
            sys.stderr.write('tomcat10: the JVM exited (rc=%%s)\n' %% proc.returncode)
            return 1
        time.sleep(0.1)


def answers_tls():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(('127.0.0.1', 443), timeout=2) as sock:
            with context.wrap_socket(sock, server_hostname='localhost'):
                return True
    except (OSError, ssl.SSLError):
        return False


def restart():
    old, unit = pid_in(JVM_PID), pid_in(UNIT_PID)
    if not unit:
        sys.exit('tomcat10 is not running (no %%s)' %% UNIT_PID)
    os.kill(unit, signal.SIGHUP)
    deadline = time.monotonic() + 120
    while True:
        new = pid_in(JVM_PID)
        if new and new != old and answers_tls():
            print('tomcat10 restarted: JVM %%d stopped, JVM %%d answers TLS on 127.0.0.1:443' %% (old, new))
            return 0
        if time.monotonic() > deadline:
            sys.exit('tomcat10 did not answer TLS on 127.0.0.1:443 within 120 seconds after the restart; see %%s' %% LOG)
        time.sleep(0.1)


sys.exit(run() if sys.argv[1:] == ['run'] else restart())
'''

#: ``systemctl`` of the deploy sandbox: tomcat10's restart here, everything else to nginx's
DEPLOY_SYSTEMCTL = '''#!/bin/sh
case "$1 $2" in
    "restart tomcat10"|"restart tomcat10.service") exec {python} {unit} restart ;;
    *) exec /usr/local/lib/certforge-examples/systemctl-nginx "$@" ;;
esac
'''

#: run in the check plays: the serial served on 127.0.0.1:<port> for SNI <name> must be <serial>
SERVED_SERIAL = '''import socket, ssl, sys
from cryptography import x509
port, name, expected = int(sys.argv[1]), sys.argv[2], sys.argv[3].upper()
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
    with context.wrap_socket(sock, server_hostname=name) as tls:
        served = '%X' % x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number
print('127.0.0.1:%d (SNI %s) serves serial %s, deployed %s' % (port, name, served, expected))
sys.exit(0 if served == expected else 'served serial %s is not the deployed %s' % (served, expected))
'''


def _served_serial_check(what, serial):
    return {'name': 'check: %s serves the certificate the example deployed (TLS handshake)' % what,
            'ansible.builtin.command': {'argv': [PYTHON, '/usr/local/lib/certforge-examples/served-serial.py',
                                                 '443', 'www.example.com', serial]},
            'changed_when': False}


def _tomcat_and_traefik(world, s, ctx):
    """The java_keystore and traefik examples, each in a phase of its own with a server on 443.

    Tomcat 10 (Debian's tomcat10: CATALINA_HOME /usr/share/tomcat10, CATALINA_BASE /srv/tomcat10
    made here) reads /etc/tomcat10/keystore.p12 (PKCS12, alias tomcat, the example's store
    password) holding an older certificate for the issued one's key.  ``systemctl restart
    tomcat10`` (the example's restart_command) really restarts it: the tomcat10 unit stand-in
    stops the JVM by PID and starts a new one, and systemctl returns once it answers TLS.  A check
    play then sees the served serial by a TLS handshake.

    Traefik: the file-provider stand-in (see the module docstring) watches /etc/traefik/dynamic
    and serves it on 443; the example's own verify checks the served serial, and so does the
    check play."""
    key_pem = s.files['/etc/nginx/tls/www.example.com.key'][0]
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    serial = '%X' % x509.load_pem_x509_certificate(s.vars['issued']['certificate'].encode()).serial_number
    s.files['/usr/local/lib/certforge-examples/served-serial.py'] = (SERVED_SERIAL, 0o644)
    # Tomcat
    java = shutil.which('java') or '/usr/bin/java'
    if os.path.exists(os.path.join(TOMCAT_HOME, 'bin', 'bootstrap.jar')) and os.path.exists(java):
        password = 'example-keystore-password'
        s.vars['vault_keystore_password'] = password
        old = x509.load_pem_x509_certificate(world.leaf(['www.example.com'], days=10, key=key)[0].encode())
        keystore = pkcs12.serialize_key_and_certificates(
            b'tomcat', key, old, [world.sub], serialization.BestAvailableEncryption(password.encode()))
        s.files[TOMCAT_KEYSTORE] = (base64.b64encode(keystore).decode(), 'b64:0600')
        s.files['/etc/tomcat10/tls/www.key'] = (key_pem, 0o600)
        s.files[TOMCAT_BASE + '/conf/server.xml'] = (
            TOMCAT_SERVER_XML.replace('{keystore}', TOMCAT_KEYSTORE).replace('{password}', password), 0o600)
        for sub in ('logs', 'temp', 'work', 'webapps'):
            s.files['%s/%s/.keep' % (TOMCAT_BASE, sub)] = ('', 0o644)
        argv = [java, '-Xmx128m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Djava.awt.headless=true',
                '-Dcatalina.home=' + TOMCAT_HOME, '-Dcatalina.base=' + TOMCAT_BASE,
                '-Djava.io.tmpdir=%s/temp' % TOMCAT_BASE,
                '-classpath', '%s/bin/bootstrap.jar:%s/bin/tomcat-juli.jar' % (TOMCAT_HOME, TOMCAT_HOME),
                'org.apache.catalina.startup.Bootstrap', 'start']
        s.files[TOMCAT_UNIT_PATH] = (TOMCAT_UNIT % {'argv': json.dumps(argv),
                                                    'log': str(ctx['tmp'] / 'tomcat10.log')}, 0o644)
        s.files['/usr/local/lib/certforge-examples/systemctl-nginx'] = s.files['/usr/local/bin/systemctl']
        s.files['/usr/local/bin/systemctl'] = (
            DEPLOY_SYSTEMCTL.replace('{python}', PYTHON).replace('{unit}', TOMCAT_UNIT_PATH), 0o755)
        s.service([PYTHON, TOMCAT_UNIT_PATH, 'run'], ctx['tmp'] / 'tomcat10-unit.log', [443], phase='tomcat')
        s.phase_checks['tomcat'] = [_served_serial_check('Tomcat', serial)]
    else:
        s.skip_tasks['One alias of a Java keystore, then restart the application'] = (
            'needs Tomcat 10 (%s/bin/bootstrap.jar) and java: make deps installs tomcat10' % TOMCAT_HOME)
    # Traefik's file provider (stand-in)
    s.files['/etc/traefik/tls/www.example.com.key'] = (key_pem, 0o600)
    s.files['/etc/traefik/dynamic/.keep'] = ('', 0o644)
    s.service([PYTHON, REPO / 'tests' / 'integration' / 'traefik_file_provider.py',
               '--directory', '/etc/traefik/dynamic', '--listen', '127.0.0.1:443'],
              ctx['tmp'] / 'traefik-file-provider.log', [443], phase='traefik')
    s.phase_checks['traefik'] = [_served_serial_check('the Traefik file-provider stand-in', serial)]


CERT_MANAGER_TASK = 'Client-certificate authentication from a PKCS#12 file'


def _cert_manager(world, s, ctx, sim):
    """The PKCS#12 example talks to https://cert-manager.com with client-certificate login: a
    second simulator (same login and customer URI) runs as cert-manager.com:443 in the network
    namespace of that task's phase, with a TLS certificate for that name from the test CA and the
    first simulator's CA for client certificates, so the example's /etc/certforge/api-bot.p12 (the
    first simulator's client certificate) logs in.  Both CAs are in the sandbox's system trust,
    which the examples use (no ca_bundle in them)."""
    root = ctx['tmp'] / 'cert-manager.com'
    root.mkdir()
    cert, key = world.leaf(['cert-manager.com'])
    (root / 'tls.pem').write_text(cert + _pem(world.sub))
    (root / 'tls.key').write_text(key)
    s.env.pop('SECTIGO_CA_BUNDLE', None)
    s.trust(sim.root_pem + _pem(world.root))
    s.hosts['cert-manager.com'] = '127.0.0.1'
    s.phase_of[CERT_MANAGER_TASK] = 'cert-manager.com'
    s.net_phases.add('cert-manager.com')
    s.phase_tasks['cert-manager.com'] = [{
        'name': 'world: /etc/certforge/certs, as the examples before this one made it',
        'ansible.builtin.file': {'path': '/etc/certforge/certs', 'state': 'directory', 'mode': '0755'}}]
    s.service([PYTHON, '-m', 'tests.simulators.sectigo_scm', '--port', '443', '--tls', '--realtime',
               '--login', sim.login, '--customer-uri', sim.customer_uri, '--issue-delay', '1',
               '--server-cert', root / 'tls.pem', '--server-key', root / 'tls.key',
               '--client-ca', sim.ca_bundle, '--dir', root / 'simulator'],
              root / 'simulator.log', [443], cwd=REPO, phase='cert-manager.com')


def setup_for(module, world, ctx):
    s = Setup()
    if module in ('deploy', 'deploy_nginx'):
        _nginx(world, s, ctx)
    if module == 'deploy':
        key = s.files['/etc/nginx/tls/www.example.com.key']
        for path in ('/etc/app/tls/app.key', '/etc/envoy/tls/www.example.com.key', '/etc/ssl/www/privkey.pem'):
            s.files[path] = key
        s.files['/etc/ssl/api/privkey.pem'] = s.files['/etc/nginx/tls/api.example.com.key']
        s.files['/etc/envoy/sds/.keep'] = ('', 0o644)
        s.vars['vault_app_p12_password'] = 'example-p12-password'
        s.skip_tasks.update(DEPLOY_NOT_RUN)
        _deploy_servers(world, s, ctx)
        _tomcat_and_traefik(world, s, ctx)
    if module.startswith('acme_'):
        if not (os.path.exists(PEBBLE) and os.path.exists(CHALLTESTSRV)):
            pytest.skip('pebble and pebble-challtestsrv are not installed')
        _acme(world, s, ctx)
    if module == 'acme_certificate':
        for name, names in (('www', ['www.example.com']), ('wildcard', ['*.example.com', 'example.com']),
                            ('intranet', ['intranet.example.com'])):
            s.files['/etc/certforge/%s.csr' % name] = (world.csr(names)[0], 0o644)
    elif module == 'acme_certificate_revoke':
        csr, key = world.csr(['www.example.com'])
        s.files['/etc/certforge/www.csr'] = (csr, 0o644)
        s.files['/etc/certforge/www.key'] = (key, 0o600)
        s.tasks.append({'name': 'world: www.example.com issued by the ACME CA',
                        'certforge.pki.acme_certificate': {
                            'name': 'www', 'acme_directory': 'https://acme-v02.api.letsencrypt.org/directory',
                            'account_key_path': '/etc/certforge/acme-account.key', 'terms_agreed': True,
                            'csr_path': '/etc/certforge/www.csr', 'certificate_path': '/etc/certforge/www.crt',
                            'http01_listen_port': 8080}})
    if module == 'local_ca':
        s.files['/etc/certforge/import/sub-ca.crt'] = (_pem(world.sub), 0o644)
        s.files['/etc/certforge/import/sub-ca.key'] = (_pem(world.sub_key), 0o600)
        s.files['/etc/certforge/import/enterprise-root.crt'] = (_pem(world.root), 0o644)
    elif module == 'local_ca_certificate':
        s.local_ca('/etc/certforge/issuing-ca')
        s.files['/etc/certforge/csr/www.csr'] = (world.csr(['www.example.com'])[0], 0o644)
    elif module in ('local_ca_crl', 'certificate'):
        s.local_ca('/etc/certforge/issuing-ca')
    elif module == 'certificate_info':
        cert, key = world.leaf(['www.example.com', 'example.com'], days=20)
        s.files['/etc/ssl/www.example.com.crt'] = (cert, 0o644)
        s.files['/etc/ssl/private/www.example.com.key'] = (key, 0o600)
        s.files['/etc/ssl/certs/example-ca.pem'] = (_pem(world.root), 0o644)
        ctx['endpoint'] = TLSEndpoint(8443, cert + _pem(world.sub), key, ctx['tmp'] / 'endpoint')
    elif module == 'tls_scan':
        # 127.0.0.1:8443 serves www.example.com; the example's other endpoints are reported unreachable
        cert, key = world.leaf(['www.example.com'], days=20)
        s.files['/etc/ssl/certs/example-ca.pem'] = (_pem(world.root), 0o644)
        ctx['endpoint'] = TLSEndpoint(8443, cert + _pem(world.sub), key, ctx['tmp'] / 'endpoint')
    elif module == 'certificate_discovery':
        # a certificate due soon beside its key, and a PKCS#12 file opened with the vaulted password
        from cryptography.hazmat.primitives.serialization import pkcs12
        cert, key = world.leaf(['www.example.com'], days=20)
        s.files['/etc/ssl/www.example.com.crt'] = (cert, 0o644)
        s.files['/etc/ssl/www.example.com.key'] = (key, 0o600)
        s.vars['vault_keystore_password'] = 'example-keystore-password'
        app_cert, app_key = world.leaf(['app.example.com'])
        p12 = pkcs12.serialize_key_and_certificates(
            b'app', serialization.load_pem_private_key(app_key.encode(), None),
            x509.load_pem_x509_certificate(app_cert.encode()), [world.sub],
            serialization.BestAvailableEncryption(b'example-keystore-password'))
        s.files['/etc/app/tls/app.p12'] = (base64.b64encode(p12).decode(), 'b64:0600')
    elif module == 'deploy_files':
        key = _issued_vars(world, s)
        s.files['/etc/ssl/example/privkey.pem'] = (key, 0o600)
        s.local_files['certs/www.pem'] = world.leaf(['www.example.com'])[0]
        s.local_files['certs/api.pem'] = world.leaf(['api.example.com'])[0]
    elif module.startswith('sectigo_'):
        sim = ctx['sectigo']()
        s.env.update({'SECTIGO_BASE_URL': sim.base_url, 'SECTIGO_CUSTOMER_URI': sim.customer_uri,
                      'SECTIGO_LOGIN': sim.login, 'SECTIGO_PASSWORD': sim.password,
                      'SECTIGO_CA_BUNDLE': sim.ca_bundle})
        s.vars['vault_sectigo_password'] = sim.password
        if module == 'sectigo_certificate':
            s.files['/etc/certforge/csr/www.csr'] = (world.csr(['www.example.com'])[0], 0o644)
            # an OV request names its organization (the PKCS#12 example enrolls under the CSR's O=)
            s.files['/etc/certforge/csr/api.csr'] = (world.csr(['api.example.com'], 'Example Org')[0], 0o644)
            s.vars['vault_p12_passphrase'] = sim.client_p12_passphrase
            s.files['/etc/certforge/api-bot.p12'] = (
                base64.b64encode(Path(sim.client_p12).read_bytes()).decode(), 'b64:0600')
            _cert_manager(world, s, ctx, sim)
    if module == 'certificate_report':
        s.local_ca('/etc/certforge/issuing-ca')
        s.files['/etc/ssl/certs/www.crt'] = (world.leaf(['www.example.com'], days=20)[0], 0o644)
        s.files['/var/www/reports/.keep'] = ('', 0o644)
    if module == 'notify':
        _notify_receivers(world, s, ctx)
    if module in NOT_RUN:
        s.skip_tasks.update((t.get('name'), NOT_RUN[module]) for t in examples_of(module))
    return s


NOTIFY_RECEIVER = '''
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        self.send_response(202)
        self.send_header('Content-Length', '0')
        self.end_headers()
ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), Handler).serve_forever()
'''


def _free_port():
    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def _notify_receivers(world, s, ctx):
    """notify: an HTTP receiver standing in for PagerDuty, Slack and the webhook, and an SMTP
    server with STARTTLS (aiosmtpd) whose certificate for 127.0.0.1 comes from the world's CA."""
    work = ctx['tmp'] / 'notify'
    work.mkdir(exist_ok=True)
    (work / 'receiver.py').write_text(NOTIFY_RECEIVER)
    cert, key = world.leaf(['127.0.0.1'])
    (work / 'smtp.pem').write_text(cert + _pem(world.sub))
    (work / 'smtp.key').write_text(key)
    (work / 'ca.pem').write_text(_pem(world.root))
    http_port, smtp_port = _free_port(), _free_port()
    s.service([PYTHON, work / 'receiver.py', http_port], work / 'receiver.log', [http_port])
    s.service([PYTHON, '-m', 'aiosmtpd', '-n', '-l', '127.0.0.1:%d' % smtp_port, '-c', 'aiosmtpd.handlers.Sink',
               '--tlscert', work / 'smtp.pem', '--tlskey', work / 'smtp.key'], work / 'smtp.log', [smtp_port])
    base = 'http://127.0.0.1:%d' % http_port
    s.vars.update(pagerduty_routing_key='example-routing-key', pagerduty_url=base + '/v2/enqueue',
                  slack_webhook_url=base + '/services/T000/B000/XXXX', webhook_url=base + '/hooks/certs',
                  webhook_secret='example-webhook-secret', smtp_host='127.0.0.1', smtp_port=smtp_port,
                  smtp_ca_path=str(work / 'ca.pem'))


SANDBOX = r'''
import base64, json, os, socket, subprocess, sys, time
spec = json.load(open(sys.argv[1]))
base = spec['base']
if spec['net']:
    subprocess.check_call(['ip', 'link', 'set', 'lo', 'up'])
subprocess.check_call(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'certforge-examples', base])
for index, directory in enumerate(spec['overlay']):
    upper, work = os.path.join(base, '%d-upper' % index), os.path.join(base, '%d-work' % index)
    os.makedirs(upper)
    os.makedirs(work)
    subprocess.check_call(['mount', '-t', 'overlay', 'overlay', '-o',
                           'lowerdir=%s,upperdir=%s,workdir=%s' % (directory, upper, work), directory])
if spec['hosts']:
    with open('/etc/hosts', 'a') as handle:
        for name, address in spec['hosts'].items():
            handle.write('%s %s\n' % (address, name))
for path, (text, mode) in spec['files'].items():
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(mode, str) and mode.startswith('b64:'):
        data, mode = base64.b64decode(text), int(mode[4:], 8)
    else:
        data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)
    os.chmod(path, mode)


def listening(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
        return True
    except OSError:
        return False


started = []
try:
    for service in spec['services']:
        log = open(service['log'], 'ab')
        started.append(subprocess.Popen(service['argv'], stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, cwd=service['cwd'],
                                        env=dict(os.environ, **service['env'])))
        deadline = time.monotonic() + 30
        while not (all(listening(port) for port in service['ports'])
                   and all(os.path.exists(path) for path in service['paths'])):
            if started[-1].poll() is not None or time.monotonic() > deadline:
                sys.exit('SANDBOX: %s did not start (rc=%s), see %s'
                         % (service['argv'][0], started[-1].poll(), service['log']))
            time.sleep(0.05)
    rc = subprocess.run(spec['argv'], env=spec['env'], cwd=spec['cwd'], stdin=subprocess.DEVNULL).returncode
finally:
    for service, process in reversed(list(zip(spec['services'], started))):
        if service['stop'] and process.poll() is None:
            subprocess.run(service['stop'], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30, check=False)
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
sys.exit(rc)
'''


def _unshare_prefix():
    unshare = shutil.which('unshare')
    if not unshare:
        return None
    prefix = [unshare, '--mount', '--propagation', 'private']
    if os.geteuid() != 0:
        prefix[1:1] = ['--user', '--map-root-user']
    return prefix


@pytest.fixture(scope='session')
def sandbox_prefix(tmp_path_factory):
    """The unshare command line, once it has been seen to mount a tmpfs and an overlay on /etc."""
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip('unshare is not installed: the examples need a private mount namespace')
    probe = tmp_path_factory.mktemp('sandbox-probe')
    script = ('mount -t tmpfs t {0} && mkdir {0}/u {0}/w && mount -t overlay overlay '
              '-o lowerdir=/etc,upperdir={0}/u,workdir={0}/w /etc && touch /etc/certforge-probe').format(probe)
    proc = subprocess.run(prefix + ['sh', '-c', script], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or os.path.exists('/etc/certforge-probe'):
        pytest.skip('no private mount namespace with overlayfs here: %s' % proc.stderr.strip()[-300:])
    return prefix


def _env(home, extra):
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    for name in list(env):
        if name.startswith('SECTIGO_'):
            env.pop(name)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': str(COLLECTIONS), 'ANSIBLE_HOME': str(home / 'home'),
        'ANSIBLE_LOCAL_TEMP': str(home / 'local_tmp'), 'ANSIBLE_REMOTE_TMP': str(home / 'remote_tmp'),
        'ANSIBLE_CALLBACK_PLUGINS': str(home / 'callback_plugins'),
        'ANSIBLE_CALLBACKS_ENABLED': 'certforge_test_results', 'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0', 'ANSIBLE_LOCALHOST_WARNING': 'False',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': 'False', 'ANSIBLE_RETRY_FILES_ENABLED': 'False',
        'ANSIBLE_DISPLAY_TRACEBACK': 'error',
    })
    env.update(extra)
    return env


def _task_names(tasks):
    names = []
    for task in tasks:
        names.append(task.get('name'))
        for key in ('block', 'rescue', 'always'):
            names.extend(_task_names(task.get(key) or []))
    return names


def _counted(tasks):
    """Tasks that do work (a block is its tasks)."""
    return [n for t in tasks for n in ([t.get('name')] if not t.get('block') else _task_names(t['block']))]


_SUMMARY = {'modules': 0, 'tasks': 0, 'passed': 0}


@pytest.fixture
def examples_context(tmp_path):
    ctx = {'tmp': tmp_path}
    started = []

    def sectigo():
        try:
            from ansible_collections.certforge.pki.tests.simulators.sectigo_scm import Simulator
        except ImportError:       # run without the build/collections link on PYTHONPATH
            sys.path.insert(0, str(REPO))
            from tests.simulators.sectigo_scm import Simulator  # pylint: disable=import-error
        sim = Simulator(login='api-bot', customer_uri='example', realtime=True,
                        workdir=str(tmp_path / 'scm-sim'))
        started.append(sim)
        sim.start()
        sim.configure(issue_delays={'DV': 1, 'OV': 1, 'EV': 1})
        return sim

    ctx['sectigo'] = sectigo
    try:
        yield ctx
    finally:
        for sim in started:
            sim.stop()
        if 'endpoint' in ctx:
            ctx['endpoint'].stop()


#: modules whose examples need a service this test does not stand up yet, and why
NOT_RUN = {}

#: deploy examples that run in a sandbox of their own, with the server they need on 443
DEPLOY_PHASES = {
    'Apache with mod_ssl, separate certificate and chain files, graceful reload': 'apache',
    'Caddy, certificate loaded through the admin API (no restart)': 'caddy',
    'HAProxy, certificate swapped through the runtime API (no reload); the file is written too': 'haproxy',
    'HAProxy, config test then a master-worker reload through the master CLI': 'haproxy',
    'One alias of a Java keystore, then restart the application': 'tomcat',
    'Traefik (file provider watching /etc/traefik/dynamic), key and certificate switched by one link rename':
        'traefik',
}

#: deploy examples for servers this test cannot run in the sandbox (none: nginx, postfix, dovecot,
#: PKCS#12, envoy SDS file and files examples run in one sandbox, apache, caddy, haproxy, Tomcat
#: and the Traefik file-provider stand-in each in one of their own)
DEPLOY_NOT_RUN = {}


def _run_phase(module, setup, tasks, phase, tmp_path, ansible_home, sandbox_prefix):
    """One ansible-playbook run of ``tasks`` in a sandbox of its own with the servers of ``phase``
    (the setup play, files, variables and environment are the same in every phase)."""
    work = tmp_path / 'work'
    work.mkdir(parents=True)
    for rel, text in setup.local_files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    plays = []
    setup_tasks = setup.tasks + setup.phase_tasks.get(phase, [])
    if setup_tasks:
        plays.append({'name': 'World for the %s examples' % module, 'hosts': 'localhost',
                      'gather_facts': False, 'tasks': setup_tasks})
    example_play = {'name': 'EXAMPLES of certforge.pki.%s%s' % (module, ' (%s)' % phase if phase else ''),
                    'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}
    if setup.vars:
        example_play['vars'] = setup.vars
    if setup.module_defaults:
        example_play['module_defaults'] = setup.module_defaults
    plays.append(example_play)
    if setup.phase_checks.get(phase):
        plays.append({'name': 'Checks after the %s examples' % module, 'hosts': 'localhost',
                      'gather_facts': False, 'tasks': setup.phase_checks[phase]})
    (work / 'playbook.yml').write_text(yaml.safe_dump(plays, sort_keys=False))
    (work / 'inventory.ini').write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n' % PYTHON)
    results = work / 'results.json'
    base = tmp_path / 'sandbox'
    base.mkdir()
    net = setup.net or phase in setup.net_phases
    spec = {'base': str(base), 'overlay': list(OVERLAY) + setup.overlay, 'hosts': setup.hosts, 'files': setup.files,
            'net': net, 'services': [s for s in setup.services if s['phase'] == phase],
            'cwd': str(work),
            'argv': [ANSIBLE_PLAYBOOK, '-i', str(work / 'inventory.ini'), str(work / 'playbook.yml')],
            'env': _env(ansible_home, dict(setup.env, CERTFORGE_TEST_RESULTS=str(results),
                                           CERTFORGE_ORDER_STORE=str(tmp_path / 'orders')))}
    (tmp_path / 'spec.json').write_text(json.dumps(spec))
    (tmp_path / 'sandbox.py').write_text(SANDBOX)
    prefix = sandbox_prefix + (['--net'] if net else [])
    proc = subprocess.run(prefix + [PYTHON, str(tmp_path / 'sandbox.py'), str(tmp_path / 'spec.json')],
                          capture_output=True, text=True, timeout=300, check=False)
    data = json.loads(results.read_text()) if results.exists() else {'stats': {}, 'tasks': []}
    return proc.returncode, data, proc.stdout + proc.stderr


@pytest.mark.parametrize('module', MODULES)
def test_examples(module, ansible_home, sandbox_prefix, examples_context, tmp_path, request):
    tasks = examples_of(module)
    world = World()
    setup = setup_for(module, world, examples_context)
    counted = _counted(tasks)
    _SUMMARY['modules'] += 1
    _SUMMARY['tasks'] += len(counted)
    request.config._certforge_examples = _SUMMARY
    runnable = [t for t in tasks if t.get('name') not in setup.skip_tasks]
    for name, why in sorted(setup.skip_tasks.items()):
        sys.stderr.write('EXAMPLES not run: %s / %s: %s\n' % (module, name, why))
    if not runnable:
        pytest.xfail('%s: %s' % (module, '; '.join(sorted(set(str(v) for v in setup.skip_tasks.values())))))
    phases = [None] + sorted(set(p for p in setup.phase_of.values()))
    status, output, rcs = {}, '', []
    for phase in phases:
        tasks_here = [t for t in runnable if setup.phase_of.get(t.get('name')) == phase]
        if not tasks_here:
            continue
        rc, data, out = _run_phase(module, setup, tasks_here, phase, tmp_path / (phase or 'main'),
                                   ansible_home, sandbox_prefix)
        rcs.append(rc)
        output += out
        for entry in data['tasks']:
            status[entry['task']] = (entry['status'], entry['result'])
    passed = [n for n in counted if n in status and status[n][0] in ('ok', 'changed', 'skipped')]
    _SUMMARY['passed'] += len(passed)
    failed = dict((n, status.get(n, ('did not run', None))) for n in counted
                  if n not in passed and n not in setup.skip_tasks)
    exception = EXCEPTION_TEXT.search(output)
    assert not any(rcs) and not failed and not exception, \
        'examples of %s: rc=%s failed=%s exception=%s\n%s' % (
            module, rcs, json.dumps(failed, default=str)[:3000],
            exception.group(0) if exception else None, output[-5000:])
    if setup.skip_tasks:
        pytest.xfail('%s: not run here: %s' % (module, json.dumps(setup.skip_tasks)))
