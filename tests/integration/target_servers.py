"""Real servers for the target tests (haproxy, apache, caddy, postfix, dovecot), each run by hand
on 127.0.0.1 with a free port and its own configuration under a pytest tmp directory, in the
foreground as our child (own session), and stopped by PID in a finalizer.  Waiting is polling with
a deadline.  Loaded by the target test files (the integration directory is not a package)."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

SBIN = os.pathsep.join([os.environ.get('PATH', ''), '/usr/sbin', '/sbin'])


def which(name):
    return shutil.which(name, path=SBIN)


def poll(condition, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError('timed out after %ss waiting for %s' % (timeout, what))
        time.sleep(interval)
        interval = min(interval * 1.5, 0.25)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def listening(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.5):
            return True
    except OSError:
        return False


def served_der(port, server_name=None, timeout=5.0, starttls=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        if starttls == 'smtp':
            from ansible_collections.certforge.pki.plugins.module_utils.targets.common import smtp_starttls
            smtp_starttls(sock, timeout)
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            return tls.getpeercert(binary_form=True)


def served_serial(port, server_name=None, starttls=None):
    from cryptography import x509
    return x509.load_der_x509_certificate(served_der(port, server_name, starttls=starttls)).serial_number


def wait_serial(port, serial, server_name=None, starttls=None, timeout=10):
    def check():
        try:
            return served_serial(port, server_name, starttls) == serial
        except OSError:
            return False
    poll(check, timeout, 'serial %X on port %s' % (serial, port))


def write(path, data, mode=0o644):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'w') as handle:
        handle.write(data)
    os.chmod(str(path), mode)


def combined(issued):
    return issued.cert_pem + issued.chain_pem + issued.key_pem


class Server:
    """A foreground server process we started (own session), stopped by PID."""

    name = 'server'

    def __init__(self, root):
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)
        self.process = None
        self.port = None
        self.log = os.path.join(self.root, 'server.log')

    def argv(self):
        raise NotImplementedError

    def env(self):
        return None

    def start(self, timeout=20.0):
        with open(self.log, 'ab') as log:
            self.process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            start_new_session=True, env=self.env(), cwd=self.root)
        try:
            poll(lambda: listening(self.port) or self.process.poll() is not None, timeout,
                 '%s on 127.0.0.1:%s' % (self.name, self.port))
        except AssertionError:
            self.stop()
            raise
        if self.process.poll() is not None:
            raise AssertionError('%s exited with %s: %s' % (self.name, self.process.returncode, self.log_tail()))
        return self

    def log_tail(self, size=3000):
        try:
            with open(self.log, 'rb') as handle:
                return handle.read()[-size:].decode('utf-8', 'replace')
        except OSError:
            return ''

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            process.send_signal(sig)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


# ---------------------------------------------------------------------------------------------
# haproxy (master-worker: master CLI for reloads, admin stats socket for the runtime API)
# ---------------------------------------------------------------------------------------------

HAPROXY_CFG = """\
global
    pidfile {root}/haproxy.pid
    stats socket {root}/admin.sock mode 600 level admin expose-fd listeners
    stats timeout 30s

defaults
    mode http
    timeout connect 5s
    timeout client  30s
    timeout server  30s

frontend fe_tls
    bind 127.0.0.1:{port} ssl crt {pem}
    http-request return status 200 content-type text/plain string "haproxy ok"
"""


class Haproxy(Server):
    name = 'haproxy'

    def __init__(self, root, issued):
        super().__init__(root)
        self.certs = os.path.join(self.root, 'certs')
        os.makedirs(self.certs, exist_ok=True)
        self.pem = os.path.join(self.certs, 'site.pem')
        self.key = os.path.join(self.certs, 'site.key')
        write(self.pem, combined(issued), 0o600)
        write(self.key, issued.key_pem, 0o600)
        self.config = os.path.join(self.root, 'haproxy.cfg')
        self.stats_socket = os.path.join(self.root, 'admin.sock')
        self.master_socket = os.path.join(self.root, 'master.sock')
        self.port = free_port()
        write(self.config, HAPROXY_CFG.format(root=self.root, port=self.port, pem=self.pem))

    def argv(self):
        return [which('haproxy'), '-W', '-db', '-S', self.master_socket + ',mode,600', '-f', self.config]

    def start(self, timeout=20.0):
        super().start(timeout)
        # both sockets accept connections (a socket file can exist before its listener answers)
        poll(lambda: _unix_answers(self.stats_socket, 'show info'), timeout, 'the haproxy stats socket')
        poll(lambda: _unix_answers(self.master_socket, 'show proc'), timeout, 'the haproxy master socket')
        return self

    def stop(self, sig=signal.SIGUSR1, timeout=10.0):
        super().stop(sig, timeout)


def _unix_answers(path, command):
    """True when ``command`` sent on the UNIX socket ``path`` gets a non-empty answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(path)
            sock.sendall(command.encode() + b'\n')
            sock.shutdown(socket.SHUT_WR)
            return bool(sock.recv(4096))
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# apache (apache2 -DFOREGROUND with a standalone config; nothing from /etc/apache2)
# ---------------------------------------------------------------------------------------------

APACHE_CONF = """\
ServerRoot "{root}"
ServerName {name}
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
Mutex file:{root}/run default
ErrorLog "{root}/logs/error.log"
LogLevel warn
LoadModule mpm_event_module     /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module    /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module          /usr/lib/apache2/modules/mod_mime.so
LoadModule dir_module           /usr/lib/apache2/modules/mod_dir.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module           /usr/lib/apache2/modules/mod_ssl.so
{user}
StartServers 1
ServerLimit 2
ThreadsPerChild 8
MaxRequestWorkers 16
TypesConfig /etc/mime.types
SSLSessionCache "shmcb:{root}/run/ssl_scache(512000)"
Listen 127.0.0.1:{port} https
<VirtualHost 127.0.0.1:{port}>
    ServerName {name}
    DocumentRoot "{root}/htdocs"
    SSLEngine on
    SSLCertificateFile      "{cert}"
    SSLCertificateChainFile "{chain}"
    SSLCertificateKeyFile   "{key}"
</VirtualHost>
"""


class Apache(Server):
    name = 'apache'

    def __init__(self, root, issued):
        super().__init__(root)
        for sub in ('run', 'logs', 'htdocs', 'certs'):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        os.chmod(self.root, 0o755)
        self.cert = os.path.join(self.root, 'certs', 'site.crt')
        self.chain = os.path.join(self.root, 'certs', 'chain.crt')
        self.key = os.path.join(self.root, 'certs', 'site.key')
        write(self.cert, issued.cert_pem)
        write(self.chain, issued.chain_pem)
        write(self.key, issued.key_pem, 0o600)
        self.port = free_port()
        self.config = os.path.join(self.root, 'apache2.conf')
        user = 'User www-data\nGroup www-data' if os.geteuid() == 0 else ''
        write(self.config, APACHE_CONF.format(root=self.root, name=issued.name, port=self.port, cert=self.cert,
                                              chain=self.chain, key=self.key, user=user))
        self.pid_file = os.path.join(self.root, 'run', 'httpd.pid')

    def command(self, *args):
        return [which('apache2'), '-d', self.root, '-f', self.config] + list(args)

    def argv(self):
        return self.command('-DFOREGROUND')

    def env(self):
        env = dict(os.environ)
        env['APACHE_RUN_DIR'] = os.path.join(self.root, 'run')
        env['APACHE_LOCK_DIR'] = os.path.join(self.root, 'run')
        env['APACHE_LOG_DIR'] = os.path.join(self.root, 'logs')
        return env

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        super().stop(sig, timeout)


# ---------------------------------------------------------------------------------------------
# caddy (JSON config, admin API on a free port, no ACME, storage under the work directory)
# ---------------------------------------------------------------------------------------------

class Caddy(Server):
    name = 'caddy'

    def __init__(self, root, issued, extra=None):
        super().__init__(root)
        import json
        self.certs = os.path.join(self.root, 'certs')
        os.makedirs(self.certs, exist_ok=True)
        self.cert = os.path.join(self.certs, 'site.crt')
        self.key = os.path.join(self.certs, 'site.key')
        write(self.cert, issued.cert_pem + issued.chain_pem)
        write(self.key, issued.key_pem, 0o600)
        load_files = [{'certificate': self.cert, 'key': self.key, 'tags': ['site']}]
        self.extra_cert = os.path.join(self.certs, 'extra.crt')
        if extra is not None:
            write(self.extra_cert, extra.cert_pem)
            write(os.path.join(self.certs, 'extra.key'), extra.key_pem, 0o600)
            load_files.append({'certificate': self.extra_cert, 'key': os.path.join(self.certs, 'extra.key')})
        self.port = free_port()
        self.admin_port = free_port()
        self.admin_url = 'http://127.0.0.1:%d' % self.admin_port
        self.config = os.path.join(self.root, 'caddy.json')
        config = {
            'admin': {'listen': '127.0.0.1:%d' % self.admin_port, 'config': {'persist': False}},
            'storage': {'module': 'file_system', 'root': os.path.join(self.root, 'data')},
            'apps': {
                'http': {'http_port': free_port(), 'https_port': self.port, 'servers': {'srv0': {
                    'listen': ['127.0.0.1:%d' % self.port], 'protocols': ['h1', 'h2'],
                    'automatic_https': {'disable': True}, 'tls_connection_policies': [{}],
                    'routes': [{'handle': [{'handler': 'static_response', 'body': 'caddy ok\n'}]}]}}},
                'tls': {'certificates': {'load_files': load_files}},
            },
        }
        write(self.config, json.dumps(config, indent=2))

    def env(self):
        env = dict(os.environ)
        env.update(HOME=self.root, XDG_DATA_HOME=os.path.join(self.root, 'data'),
                   XDG_CONFIG_HOME=os.path.join(self.root, 'config'))
        return env

    def argv(self):
        return [which('caddy'), 'run', '--config', self.config]

    def command(self, *args):
        return [which('caddy')] + list(args)


def shared_root(prefix):
    """A world-traversable (0755) directory under /tmp: postfix and dovecot processes that drop
    to their own users must reach their queue, state and certificate paths."""
    import tempfile
    root = tempfile.mkdtemp(prefix=prefix, dir='/tmp')
    os.chmod(root, 0o755)
    return root


# ---------------------------------------------------------------------------------------------
# postfix (private instance: own config, queue and data directories; never delivers)
# ---------------------------------------------------------------------------------------------

POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.test
mydomain = mail.test
myorigin = $myhostname
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
maillog_file = {root}/maillog
maillog_file_prefixes = /var, /dev/stdout, {root}
smtpd_banner = $myhostname ESMTP certforge-test
smtpd_tls_chain_files = {key}, {cert}
smtpd_tls_security_level = may
"""

POSTFIX_MASTER = """\
127.0.0.1:{port}   inet  n       -       n       -       -       smtpd
pickup            unix  n       -       n       60      1       pickup
cleanup           unix  n       -       n       -       0       cleanup
qmgr              unix  n       -       n       300     1       qmgr
tlsmgr            unix  -       -       n       1000?   1       tlsmgr
rewrite           unix  -       -       n       -       -       trivial-rewrite
bounce            unix  -       -       n       -       0       bounce
defer             unix  -       -       n       -       0       bounce
trace             unix  -       -       n       -       0       bounce
verify            unix  -       -       n       -       1       verify
flush             unix  n       -       n       1000?   0       flush
proxymap          unix  -       -       n       -       -       proxymap
smtp              unix  -       -       n       -       -       smtp
showq             unix  n       -       n       -       -       showq
error             unix  -       -       n       -       -       error
retry             unix  -       -       n       -       -       error
discard           unix  -       -       n       -       -       discard
anvil             unix  -       -       n       -       1       anvil
scache            unix  -       -       n       -       1       scache
postlog           unix-dgram n  -       n       -       1       postlogd
"""


class Postfix(Server):
    name = 'postfix'

    def __init__(self, root, cert_path, key_path):
        super().__init__(root)
        import pwd
        for sub in ('etc', 'spool', 'data'):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        entry = pwd.getpwnam('postfix')
        os.chown(os.path.join(self.root, 'data'), entry.pw_uid, entry.pw_gid)
        self.etc = os.path.join(self.root, 'etc')
        self.port = free_port()
        write(os.path.join(self.etc, 'main.cf'), POSTFIX_MAIN.format(root=self.root, key=key_path, cert=cert_path))
        write(os.path.join(self.etc, 'master.cf'), POSTFIX_MASTER.format(port=self.port))

    def command(self, *args):
        """postfix -c ETC ARGS run under script(1), so its errors reach stderr."""
        return [which('script'), '-qec', ' '.join([which('postfix'), '-c', self.etc] + list(args)), '/dev/null']

    def argv(self):
        return [which('postfix'), '-c', self.etc, 'start-fg']

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.alive():
            subprocess.run(self.command('stop'), capture_output=True, timeout=30, check=False)
        super().stop(sig, timeout)


# ---------------------------------------------------------------------------------------------
# dovecot (own config file, IMAPS only)
# ---------------------------------------------------------------------------------------------

DOVECOT_CONF = """\
instance_name = certforge-test-{port}
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
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
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


class Dovecot(Server):
    name = 'dovecot'

    def __init__(self, root, cert_path, key_path):
        super().__init__(root)
        for sub in ('run', 'state', 'home'):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        self.port = free_port()
        self.config = os.path.join(self.root, 'dovecot.conf')
        write(self.config, DOVECOT_CONF.format(root=self.root, port=self.port, cert=cert_path, key=key_path))

    def argv(self):
        return [which('dovecot'), '-F', '-c', self.config]
