"""A stand-in for Traefik's file provider and TLS store, for tests that need a live endpoint
(Traefik itself has no Debian package and cannot be fetched here).

What it does, as Traefik does with ``--providers.file.directory=<dir> --providers.file.watch=true``:

* reads every ``*.yml``/``*.yaml`` file in the directory (and its subdirectories; other files,
  such as the versioned pair directories of the ``traefik`` target, are ignored) and collects
  their ``tls.certificates`` entries (``certFile``/``keyFile`` paths, read as paths);
* watches the directory itself with inotify (Traefik's fsnotify watch is on the directory, not
  recursive): any entry created, written, renamed or removed there, such as the target's one
  link rename, makes it read the whole configuration again;
* a certificate whose key does not belong to it, or whose files cannot be read, is left out and
  logged (the others still load), as Traefik drops a broken entry of its TLS store;
* serves TLS on ``--listen`` and picks the certificate by SNI against each certificate's DNS
  names (wildcards one label deep), falling back to a self-signed "TRAEFIK DEFAULT CERT".

It is not Traefik: no routers, no HTTP (a connection is closed after the handshake), no TOML
files and no provider throttling (the reload follows the change right away).

    python traefik_file_provider.py --directory /etc/traefik/dynamic --listen 127.0.0.1:443
"""

import argparse
import ctypes
import datetime
import os
import select
import signal
import socket
import ssl
import sys
import tempfile
import threading

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# inotify(7) event bits: everything that changes an entry of the watched directory
IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
WATCH_MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
              | IN_DELETE_SELF | IN_MOVE_SELF)


def log(message):
    sys.stderr.write('traefik-file-provider: %s\n' % message)
    sys.stderr.flush()


def config_files(directory):
    """The dynamic configuration files Traefik reads from ``directory`` (sorted, recursive;
    links to directories are not followed, as os.ReadDir reports them as links)."""
    found = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            found.extend(config_files(entry.path))
        elif entry.name.endswith(('.yml', '.yaml')) and entry.is_file():
            found.append(entry.path)
    return found


def certificate_entries(directory):
    entries = []
    for path in config_files(directory):
        try:
            with open(path) as handle:
                document = yaml.safe_load(handle) or {}
            entries.extend((path, c) for c in ((document.get('tls') or {}).get('certificates') or []))
        except (OSError, yaml.YAMLError, AttributeError) as exc:
            log('cannot read %s: %s' % (path, exc))
    return entries


def dns_names(cert_path):
    with open(cert_path, 'rb') as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [n.lower() for n in names], cert.serial_number


def matches(pattern, server_name):
    if pattern == server_name:
        return True
    if pattern.startswith('*.'):
        head, dummy, rest = server_name.partition('.')
        return bool(head) and rest == pattern[2:]
    return False


class Store:
    """The TLS store: (DNS names, context) per loaded certificate, swapped whole on reload."""

    def __init__(self, directory, default_files):
        self.directory = directory
        self.default_files = default_files
        self.default_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.default_context.load_cert_chain(*default_files)
        self.entries = []
        self.lock = threading.Lock()

    def load(self):
        loaded = []
        for source, entry in certificate_entries(self.directory):
            cert_file, key_file = entry.get('certFile'), entry.get('keyFile')
            try:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(cert_file, key_file)     # reads both paths; a foreign key fails
                names, serial = dns_names(cert_file)
            except (OSError, ssl.SSLError, ValueError, TypeError) as exc:
                log('certificate of %s left out (%s, %s): %s' % (source, cert_file, key_file, exc))
                continue
            loaded.append((names, context))
            log('loaded %s serial %X for %s' % (cert_file, serial, ','.join(names)))
        with self.lock:
            self.entries = loaded

    def context_for(self, server_name):
        with self.lock:
            entries = list(self.entries)
        name = (server_name or '').lower()
        for names, context in entries:
            if any(matches(pattern, name) for pattern in names):
                return context
        return self.default_context


def default_pair(workdir):
    """Traefik's fallback, a self-signed certificate named TRAEFIK DEFAULT CERT: (certificate
    path, key path) in ``workdir``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'TRAEFIK DEFAULT CERT')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(workdir, 'default.crt'), os.path.join(workdir, 'default.key')
    with open(cert_path, 'wb') as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return cert_path, key_path


class Watch:
    """An inotify watch on one directory (libc through ctypes); ``wait`` is True after events."""

    def __init__(self, directory):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), 'inotify_init1 failed')
        if libc.inotify_add_watch(self.fd, os.fsencode(directory), WATCH_MASK) < 0:
            raise OSError(ctypes.get_errno(), 'inotify_add_watch %s failed' % directory)

    def wait(self, timeout):
        readable = select.select([self.fd], [], [], timeout)[0]
        if not readable:
            return False
        while True:                          # drain: one reload for a burst of events
            try:
                if not os.read(self.fd, 65536):
                    break
            except BlockingIOError:
                if not select.select([self.fd], [], [], 0.05)[0]:
                    break
        return True


def serve(listen, store, stopped):
    host, port = listen.rsplit(':', 1)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # the context of the connection is chosen by SNI (no SNI: the default certificate)
    server.sni_callback = lambda sslobj, name, dummy: setattr(sslobj, 'context', store.context_for(name))
    server.load_cert_chain(*store.default_files)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(32)
    sock.settimeout(0.5)
    log('listening on %s' % listen)
    while not stopped.is_set():
        try:
            conn = sock.accept()[0]
        except socket.timeout:
            continue
        threading.Thread(target=_handshake, args=(server, conn), daemon=True).start()
    sock.close()


def _handshake(server, conn):
    try:
        conn.settimeout(5)
        with server.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)
    except (OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--directory', required=True)
    parser.add_argument('--listen', default='127.0.0.1:443')
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *dummy: stopped.set())
    signal.signal(signal.SIGINT, lambda *dummy: stopped.set())
    workdir = tempfile.mkdtemp(prefix='traefik-file-provider-')
    try:
        store = Store(args.directory, default_pair(workdir))
        watch = Watch(args.directory)
        store.load()
        server = threading.Thread(target=serve, args=(args.listen, store, stopped), daemon=True)
        server.start()
        while not stopped.is_set() and server.is_alive():
            if watch.wait(0.5):
                log('change in %s: reloading' % args.directory)
                store.load()
        return 0 if stopped.is_set() else 1
    finally:
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)


if __name__ == '__main__':
    sys.exit(main())
