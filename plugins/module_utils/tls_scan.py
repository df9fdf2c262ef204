# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What TLS endpoints serve: the work behind ``certforge.pki.tls_scan``.

Every endpoint is checked against the ``allow`` list before the first connection of the scan.
The handshake runs with verification off (so that broken chains are seen, not refused); the chain
is then checked here with cryptography: issuer/subject names and signatures up to a trust anchor
of ``ca_path`` (or the system trust store), the name against the SANs (RFC 6125), validity, key
sizes and signature hashes.

The served chain (not only the leaf) comes from ``SSLSocket.get_unverified_chain()`` on Python
3.13+, and from the same method of the socket's ``_sslobj`` on Python 3.10 to 3.12 (present there,
not documented).  Where neither exists, only the leaf is read and the result says
``chain_source: leaf_only`` and ``chain_complete: unknown``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import re
import socket
import struct
import threading
import time

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import ArgumentSpec
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError

STARTTLS = ('none', 'smtp', 'imap', 'pop3', 'ldap', 'postgres')
PROBLEMS = ('expired', 'not_yet_valid', 'expiring_soon', 'name_mismatch', 'self_signed', 'incomplete_chain',
            'untrusted', 'weak_key', 'sha1_signature')
MAX_CONCURRENCY = 1000
MAX_TARGETS_LIMIT = 1000000

SPEC = ArgumentSpec(dict(
    targets=dict(type='list', elements='raw'),
    cidrs=dict(type='list', elements='str'),
    ports=dict(type='list', elements='int'),
    allow=dict(type='list', elements='str', required=True),
    server_names=dict(type='list', elements='str'),
    starttls=dict(type='str', default='none', choices=list(STARTTLS)),
    concurrency=dict(type='int', default=50),
    timeout=dict(type='float', default=5),
    warn_days=dict(type='int', default=30),
    ca_path=dict(type='path'),
    max_targets=dict(type='int', default=4096),
))


# ---------------------------------------------------------------------------------------------
# options -> endpoints (no network here beyond name resolution)
# ---------------------------------------------------------------------------------------------

def _fail(option, msg, fix):
    raise ConfigError(msg, option=option, fix=fix)


def _networks(values, option):
    nets = []
    for value in values:
        text = str(value).strip()
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            _fail(option, '%r is not a CIDR range' % (value,),
                  'write ranges like 127.0.0.0/8, 192.0.2.0/24 or 2001:db8::/32')
    return nets


def _check_port(port, option):
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        _fail(option, '%r is not a TCP port' % (port,), 'give ports between 1 and 65535')
    return port


def _split_host_port(text, option):
    """``host:port``, ``[v6]:port``, ``host`` or a bare IPv6 address -> (host, port or None)."""
    text = text.strip()
    match = re.match(r'^\[([^\]]+)\](?::(\d+))?$', text)
    if match:
        return match.group(1), int(match.group(2)) if match.group(2) else None
    if text.count(':') == 1:
        host, port = text.split(':')
        if not port.isdigit():
            _fail(option, '%r: the port %r is not a number' % (text, port), "write targets as 'host:port'")
        return host, int(port)
    return text, None


def _norm_target(item, index, default_starttls, ports):
    option = 'targets[%d]' % index
    if isinstance(item, str):
        host, port = _split_host_port(item, option)
        sni, starttls = None, default_starttls
    elif isinstance(item, dict):
        unknown = sorted(set(item) - {'host', 'port', 'sni', 'server_name', 'starttls'})
        if unknown:
            _fail(option, 'unknown keys %s' % ', '.join(unknown),
                  'use host, port, sni (or server_name) and starttls')
        host = item.get('host')
        if not isinstance(host, str) or not host.strip():
            _fail(option + '.host', 'is missing or empty', "give the host name or IP address, e.g. host: 127.0.0.1")
        port = item.get('port')
        if port is not None:
            if isinstance(port, str) and port.strip().isdigit():
                port = int(port)
        sni = item.get('sni') if item.get('sni') is not None else item.get('server_name')
        if sni is not None and (not isinstance(sni, str) or not sni.strip()):
            _fail(option + '.sni', 'must be a non-empty host name', 'e.g. sni: www.example.com, or leave it out')
        starttls = item.get('starttls') or default_starttls
        if starttls not in STARTTLS:
            _fail(option + '.starttls', '%r is not one of %s' % (starttls, ', '.join(STARTTLS)),
                  'use one of %s' % ', '.join(STARTTLS))
        host = host.strip()
    else:
        _fail(option, 'must be a "host:port" string or a dict with host and port', "e.g. - 127.0.0.1:443")
    if not host or any(c.isspace() for c in host) or '\x00' in host:
        _fail(option, '%r is not a host name or address' % (host,), "write targets as 'host:port'")
    if port is None:
        if not ports:
            _fail(option, '%r has no port and the option ports is empty' % (host,),
                  "write 'host:port', or list the ports to try in ports")
        port_list = list(ports)
    else:
        port_list = [_check_port(port, option + '.port')]
    return [(host, p, sni.strip() if sni else None, starttls) for p in port_list]


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _resolve(host):
    """Addresses of ``host`` (IPv4 first); [] when it does not resolve."""
    if _is_ip(host):
        return [host]
    try:
        infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    seen = []
    for family, _t, _p, _c, sockaddr in sorted(infos, key=lambda i: 0 if i[0] == socket.AF_INET else 1):
        if sockaddr[0] not in seen:
            seen.append(sockaddr[0])
    return seen


def _allowed(address, allow):
    ip = ipaddress.ip_address(address.split('%')[0])
    return any(ip.version == net.version and ip in net for net in allow)


def plan(params):
    """The endpoints to scan, every one inside ``allow``; ConfigError before any connection."""
    allow_values = params.get('allow') or []
    if not allow_values:
        _fail('allow', 'is empty: nothing may be scanned',
              'list the CIDR ranges the scan may connect to, e.g. allow: [127.0.0.0/8]')
    allow = _networks(allow_values, 'allow')
    ports = [_check_port(p, 'ports') for p in (params.get('ports') or [])]
    if len(set(ports)) != len(ports):
        _fail('ports', 'lists a port twice', 'list each port once')
    concurrency = params.get('concurrency')
    if concurrency is None or not 1 <= concurrency <= MAX_CONCURRENCY:
        _fail('concurrency', '%r is out of range' % (concurrency,), 'give 1 to %d' % MAX_CONCURRENCY)
    timeout = params.get('timeout')
    if timeout is None or not 0 < timeout <= 300:
        _fail('timeout', '%r is out of range' % (timeout,), 'give seconds above 0 and at most 300, e.g. timeout: 5')
    if params.get('warn_days') is None or params['warn_days'] < 0:
        _fail('warn_days', '%r is out of range' % (params.get('warn_days'),), 'give 0 or more days, e.g. warn_days: 30')
    max_targets = params.get('max_targets')
    if max_targets is None or not 1 <= max_targets <= MAX_TARGETS_LIMIT:
        _fail('max_targets', '%r is out of range' % (max_targets,), 'give 1 to %d' % MAX_TARGETS_LIMIT)
    names = []
    for index, name in enumerate(params.get('server_names') or []):
        if not isinstance(name, str) or not name.strip() or any(c.isspace() for c in name.strip()):
            _fail('server_names[%d]' % index, '%r is not a host name' % (name,), 'e.g. server_names: [www.example.com]')
        names.append(name.strip())
    ca_path = params.get('ca_path')
    if ca_path and not os.path.exists(ca_path):
        _fail('ca_path', '%s does not exist' % ca_path,
              'give a PEM CA bundle file or a directory of PEM CA files, or leave ca_path out for the system store')
    default_starttls = params.get('starttls') or 'none'
    if not params.get('targets') and not params.get('cidrs'):
        _fail('targets', 'nothing to scan: targets and cidrs are both empty',
              "list endpoints in targets ('host:port') or ranges in cidrs (with ports)")
    name_count = max(1, len(names))

    raw = []
    for index, item in enumerate(params.get('targets') or []):
        raw.extend(_norm_target(item, index, default_starttls, ports))
    ranges = _networks(params.get('cidrs') or [], 'cidrs')
    if ranges and not ports:
        _fail('ports', 'is empty but cidrs is set', 'list the ports to scan in each range, e.g. ports: [443]')
    total = len(raw) * name_count + sum(net.num_addresses for net in ranges) * len(ports) * name_count
    if total > max_targets:
        _fail('max_targets', 'the scan would cover %d endpoints, more than max_targets (%d)' % (total, max_targets),
              'narrow cidrs, ports or server_names, or raise max_targets on purpose')

    for index, net in enumerate(ranges):
        if not any(net.version == a.version and net.subnet_of(a) for a in allow):
            _fail('allow', 'the range %s (cidrs[%d]) is not inside the allow list (%s); nothing was scanned'
                  % (net, index, ', '.join(str(a) for a in allow)),
                  'scan only ranges inside allow, or add the range to allow on purpose')

    endpoints = []
    for host, port, sni, starttls in raw:
        addresses = _resolve(host)
        inside = [a for a in addresses if _allowed(a, allow)]
        if addresses and not inside:
            _fail('allow', 'the target %s (%s) is not inside the allow list (%s); nothing was scanned'
                  % (host, ', '.join(addresses), ', '.join(str(a) for a in allow)),
                  'scan only addresses inside allow, or add the address to allow on purpose')
        addresses = inside          # a name is only ever connected to at an address inside allow
        snis = [sni] if sni else (names or [None if _is_ip(host) else host])
        for name in snis:
            endpoints.append(dict(host=host, address=addresses[0] if addresses else None, port=port,
                                  sni=name, starttls=starttls))
    for net in ranges:
        hosts = list(net.hosts()) if net.num_addresses > 2 else list(net)
        for ip in hosts:
            for port in ports:
                for name in (names or [None]):
                    endpoints.append(dict(host=str(ip), address=str(ip), port=port, sni=name,
                                          starttls=default_starttls))
    return endpoints


# ---------------------------------------------------------------------------------------------
# STARTTLS: bring a plain connection to the point where the TLS handshake starts
# ---------------------------------------------------------------------------------------------

class _Lines:
    def __init__(self, sock, deadline):
        self.sock, self.deadline, self.buf = sock, deadline, b''

    def _remaining(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout('timed out')
        return left

    def recv(self, size=4096):
        self.sock.settimeout(self._remaining())
        data = self.sock.recv(size)
        if not data:
            raise OSError('the server closed the connection')
        return data

    def line(self):
        while b'\n' not in self.buf:
            if len(self.buf) > 65536:
                raise OSError('answer line too long')
            self.buf += self.recv()
        line, self.buf = self.buf.split(b'\n', 1)
        return line.rstrip(b'\r').decode('utf-8', 'replace')

    def exact(self, size):
        while len(self.buf) < size:
            self.buf += self.recv(size - len(self.buf))
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def send(self, data):
        self.sock.settimeout(self._remaining())
        self.sock.sendall(data)


def _smtp_reply(lines):
    text = []
    while True:
        line = lines.line()
        text.append(line)
        if len(line) < 4 or line[3] != '-':
            break
    code = text[-1][:3]
    return (int(code) if code.isdigit() else 0), '\n'.join(text)


def _starttls_smtp(lines):
    code, answer = _smtp_reply(lines)
    if code != 220:
        raise OSError('SMTP greeting was %r' % answer[:80])
    lines.send(b'EHLO certforge-scan.invalid\r\n')
    code, answer = _smtp_reply(lines)
    if code != 250:
        raise OSError('EHLO answered %r' % answer[:80])
    if not re.search(r'^250[ -]STARTTLS\b', answer, re.M | re.I):
        raise OSError('the SMTP server does not offer STARTTLS')
    lines.send(b'STARTTLS\r\n')
    code, answer = _smtp_reply(lines)
    if code != 220:
        raise OSError('STARTTLS answered %r' % answer[:80])


def _starttls_imap(lines):
    greeting = lines.line()
    if not greeting.upper().startswith('* OK'):
        raise OSError('IMAP greeting was %r' % greeting[:80])
    lines.send(b'a001 STARTTLS\r\n')
    while True:
        line = lines.line()
        if line.startswith('a001 '):
            break
    if not line.upper().startswith('A001 OK'):
        raise OSError('STARTTLS answered %r' % line[:80])


def _starttls_pop3(lines):
    greeting = lines.line()
    if not greeting.startswith('+OK'):
        raise OSError('POP3 greeting was %r' % greeting[:80])
    lines.send(b'STLS\r\n')
    line = lines.line()
    if not line.startswith('+OK'):
        raise OSError('STLS answered %r' % line[:80])


LDAP_STARTTLS_OID = b'1.3.6.1.4.1.1466.20037'


def ldap_starttls_request(message_id=1):
    """BER of an LDAPMessage with an ExtendedRequest for StartTLS (RFC 4511 4.14.1)."""
    name = b'\x80' + bytes([len(LDAP_STARTTLS_OID)]) + LDAP_STARTTLS_OID      # [0] requestName
    op = b'\x77' + bytes([len(name)]) + name                                   # [APPLICATION 23]
    msgid = b'\x02\x01' + bytes([message_id])
    body = msgid + op
    return b'\x30' + bytes([len(body)]) + body


def _ber_length(lines):
    first = lines.exact(1)[0]
    if first < 0x80:
        return first
    count = first & 0x7F
    if not 0 < count <= 4:
        raise OSError('malformed LDAP answer (length)')
    return int.from_bytes(lines.exact(count), 'big')


def _ber_tlv(data, pos):
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length >= 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos:pos + count], 'big')
        pos += count
    return tag, data[pos:pos + length], pos + length


def parse_ldap_extended_response(body):
    """(messageID, resultCode, diagnosticMessage) of the content of an LDAPMessage SEQUENCE
    holding an ExtendedResponse ([APPLICATION 24])."""
    tag, msgid, pos = _ber_tlv(body, 0)
    if tag != 0x02:
        raise OSError('malformed LDAP answer (message id)')
    tag, op, pos = _ber_tlv(body, pos)
    if tag != 0x78:
        raise OSError('the LDAP server answered with operation tag 0x%02x, not an ExtendedResponse' % tag)
    tag, code, p = _ber_tlv(op, 0)
    if tag != 0x0A:
        raise OSError('malformed LDAP answer (resultCode)')
    _tag, _dn, p = _ber_tlv(op, p)
    _tag, diag, p = _ber_tlv(op, p)
    return int.from_bytes(msgid, 'big'), int.from_bytes(code, 'big'), diag.decode('utf-8', 'replace')


def _starttls_ldap(lines):
    lines.send(ldap_starttls_request(1))
    if lines.exact(1) != b'\x30':
        raise OSError('the LDAP server did not answer with an LDAPMessage')
    length = _ber_length(lines)
    if length > 65536:
        raise OSError('LDAP answer too long')
    msgid, code, diag = parse_ldap_extended_response(lines.exact(length))
    if msgid != 1:
        raise OSError('the LDAP server answered message %d, not 1' % msgid)
    if code != 0:
        raise OSError('the LDAP server refused StartTLS (resultCode %d%s)' % (code, ': ' + diag if diag else ''))


def _starttls_postgres(lines):
    lines.send(struct.pack('!II', 8, 80877103))
    answer = lines.exact(1)
    if answer == b'N':
        raise OSError('the PostgreSQL server does not accept SSL (answered N to SSLRequest)')
    if answer != b'S':
        raise OSError('the PostgreSQL server answered %r to SSLRequest' % answer)


_STARTTLS = {'smtp': _starttls_smtp, 'imap': _starttls_imap, 'pop3': _starttls_pop3,
             'ldap': _starttls_ldap, 'postgres': _starttls_postgres}


# ---------------------------------------------------------------------------------------------
# one endpoint: connect, (STARTTLS), handshake, read the served chain
# ---------------------------------------------------------------------------------------------

def client_context():
    """A context that accepts whatever the server serves (verification is done afterwards)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.set_ciphers('ALL:@SECLEVEL=0')     # see weak keys and SHA-1 chains instead of failing on them
    except ssl.SSLError:
        pass
    return ctx


def served_chain(tls):
    """(DER list leaf first, source) — ``served`` or ``leaf_only``."""
    leaf = tls.getpeercert(binary_form=True)
    getter = getattr(tls, 'get_unverified_chain', None)
    if getter is None:
        getter = getattr(getattr(tls, '_sslobj', None), 'get_unverified_chain', None)
    if getter is not None:
        try:
            items = getter() or []
            ders = []
            for item in items:
                if isinstance(item, (bytes, bytearray)):
                    ders.append(bytes(item))
                elif hasattr(item, 'public_bytes'):
                    import ssl
                    ders.append(item.public_bytes(getattr(getattr(ssl, '_ssl', None), 'ENCODING_DER', 2)))
            if ders and ders[0] == leaf:
                return ders, 'served'
        except Exception:  # pylint: disable=broad-except
            pass
    return ([leaf] if leaf else []), 'leaf_only'


def _handshake(tls, deadline):
    """The TLS handshake within ``deadline`` in total (a blocking handshake would give every
    read the whole time again)."""
    import selectors
    import ssl
    tls.setblocking(False)
    with selectors.DefaultSelector() as selector:
        while True:
            try:
                tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                events = selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                events = selectors.EVENT_WRITE
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout('timed out')
            selector.register(tls, events)
            ready = selector.select(left)
            selector.unregister(tls)
            if not ready:
                raise socket.timeout('timed out')


def fetch(endpoint, ctx, timeout):
    """Connect and handshake; returns a dict with reachable, error, protocol, cipher, ders, source."""
    import ssl
    out = dict(reachable=False, handshake=False, error=None, protocol=None, cipher=None, ders=[],
               source=None)
    if endpoint['address'] is None:
        out['error'] = 'cannot resolve %s' % endpoint['host']
        return out
    deadline = time.monotonic() + timeout
    stage = 'connect'
    sock = None
    try:
        family = socket.AF_INET6 if ':' in endpoint['address'] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect((endpoint['address'], endpoint['port']))
        out['reachable'] = True
        if endpoint['starttls'] != 'none':
            stage = 'starttls ' + endpoint['starttls']
            _STARTTLS[endpoint['starttls']](_Lines(sock, deadline))
        stage = 'handshake'
        tls = ctx.wrap_socket(sock, server_hostname=endpoint['sni'], do_handshake_on_connect=False)
        sock = tls
        _handshake(tls, deadline)
        out['handshake'] = True
        out['protocol'] = tls.version()
        cipher = tls.cipher()
        out['cipher'] = cipher[0] if cipher else None
        out['ders'], out['source'] = served_chain(tls)
    except socket.timeout:
        out['error'] = '%s: timed out after %gs' % (stage, timeout)
    except ssl.SSLError as exc:
        out['error'] = '%s: %s' % (stage, exc.reason or exc)
    except (OSError, ValueError) as exc:
        out['error'] = '%s: %s' % (stage, exc.strerror or exc if isinstance(exc, OSError) else exc)
    finally:
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
    return out


# ---------------------------------------------------------------------------------------------
# analysis of a served chain (cryptography)
# ---------------------------------------------------------------------------------------------

def _signature_hash(cert):
    try:
        algorithm = cert.signature_hash_algorithm
    except Exception:  # pylint: disable=broad-except
        return None     # an algorithm cryptography does not know
    return algorithm.name if algorithm is not None else None


class Analyzer:
    """Parses certificates once (by DER) and judges chains against a set of trust anchors."""

    def __init__(self, ca_path=None, warn_days=30, now=None):
        self.lib = cx509.require_cryptography()
        self.ca_path = ca_path
        self.warn_days = warn_days
        self.now = now or cx509.utcnow()
        self._certs = {}
        self._facts = {}
        self._verdicts = {}
        self._anchors = None
        self._lock = threading.Lock()

    # -- trust anchors -----------------------------------------------------------------------

    def _anchor_files(self):
        import ssl
        if self.ca_path:
            return [self.ca_path]
        paths = ssl.get_default_verify_paths()
        files = []
        for candidate in (paths.cafile, paths.openssl_cafile, paths.capath, paths.openssl_capath):
            if candidate and os.path.exists(candidate) and candidate not in files:
                files.append(candidate)
                if os.path.isfile(candidate):
                    break       # one bundle file is the whole store
        return files

    def _load_anchor_file(self, path, into):
        try:
            with open(path, 'rb') as handle:
                data = handle.read()
        except (IOError, OSError):
            return
        if b'-----BEGIN' not in data:
            try:
                into.append(self.lib.x509.load_der_x509_certificate(data))
            except ValueError:
                pass
            return
        for block in re.findall(b'-----BEGIN (?:TRUSTED |X509 )?CERTIFICATE-----.+?-----END (?:TRUSTED |X509 )?'
                                b'CERTIFICATE-----', data, re.S):
            block = re.sub(b'(TRUSTED |X509 )CERTIFICATE', b'CERTIFICATE', block)
            try:
                into.append(self.lib.x509.load_pem_x509_certificate(block))
            except ValueError:
                pass

    def anchors(self):
        with self._lock:
            if self._anchors is None:
                certs = []
                for path in self._anchor_files():
                    if os.path.isdir(path):
                        for name in sorted(os.listdir(path)):
                            full = os.path.join(path, name)
                            if os.path.isfile(full) and re.search(r'(\.pem|\.crt|\.cer|\.[0-9]+)$', name):
                                self._load_anchor_file(full, certs)
                    else:
                        self._load_anchor_file(path, certs)
                by_subject = {}
                seen = set()
                for cert in certs:
                    der = cert.public_bytes(self.lib.serialization.Encoding.DER)
                    if der in seen:
                        continue
                    seen.add(der)
                    by_subject.setdefault(cert.subject.public_bytes(), []).append((der, cert))
                self._anchors = by_subject
            return self._anchors

    def check_ca_path(self):
        """ConfigError when ``ca_path`` holds no certificate (before any connection)."""
        if self.ca_path and not any(self.anchors().values()):
            raise ConfigError('%s holds no PEM or DER certificate' % self.ca_path, option='ca_path',
                              fix='give a PEM CA bundle file or a directory of PEM CA files')

    # -- certificates ------------------------------------------------------------------------

    def cert(self, der):
        cert = self._certs.get(der)
        if cert is None:
            cert = self.lib.x509.load_der_x509_certificate(der)
            self._certs[der] = cert
        return cert

    def facts(self, der):
        facts = self._facts.get(der)
        if facts is not None:
            return facts
        cert = self.cert(der)
        key = cx509.key_description(cert)
        start, end = cx509.not_before(cert), cx509.not_after(cert)
        try:
            sans = cx509.san_list(cert)
        except ConfigError:
            sans = []
        try:
            constraints = cert.extensions.get_extension_for_class(self.lib.x509.BasicConstraints).value
            is_ca = bool(constraints.ca)
        except (self.lib.x509.ExtensionNotFound, ValueError):
            is_ca = False
        facts = dict(
            subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
            serial=cx509.serial_hex(cert), sans=sans,
            not_before=cx509.iso8601(start), not_after=cx509.iso8601(end),
            days_left=round((end - self.now).total_seconds() / 86400.0, 2),
            sha256=cx509.fingerprint(cert, 'sha256'),
            key_type=key.get('type'), key_size=key.get('size'), key_curve=key.get('curve'),
            signature_hash=_signature_hash(cert), self_signed=self._self_signed(cert), is_ca=is_ca,
        )
        self._facts[der] = facts
        return facts

    # -- judgements --------------------------------------------------------------------------

    def _self_signed(self, cert):
        return cert.subject == cert.issuer and verify_signature(cert, cert, self.lib)

    def _issued_by(self, cert, issuer):
        if cert.issuer != issuer.subject:
            return False
        return verify_signature(cert, issuer, self.lib)

    def path(self, ders, source):
        """(chain_complete, trusted, detail): build the path leaf -> trust anchor."""
        certs = [self.cert(d) for d in ders]
        anchors = self.anchors()
        current, current_der = certs[0], ders[0]
        used = {current_der}
        for dummy in range(12):
            for der, anchor in anchors.get(current.subject.public_bytes(), []):
                if der == current_der:
                    return True, True, None
            for der, anchor in anchors.get(current.issuer.public_bytes(), []):
                if self._issued_by(current, anchor):
                    return True, True, None
            candidates = [(d, c) for d, c in zip(ders, certs) if d not in used and c.subject == current.issuer]
            nxt = None
            for der, cert in candidates:
                if self._issued_by(current, cert):
                    nxt = (der, cert)
                    break
            if nxt is None:
                if self._self_signed(current):
                    return True, False, 'the chain ends at %s, which is not a trust anchor' % (
                        current.subject.rfc4514_string() or '(empty subject)')
                if candidates:
                    return False, False, 'the signature of %s does not verify with the served %s' % (
                        current.subject.rfc4514_string(), current.issuer.rfc4514_string())
                if source == 'leaf_only':
                    return 'unknown', None, 'only the leaf could be read; its issuer %s is not a trust anchor' % (
                        current.issuer.rfc4514_string())
                if current_der != ders[0]:
                    # the leaf's issuer was served; the top of the served chain has an unknown issuer
                    # (usually a root that is not in the trust store)
                    return True, False, 'the issuer %s of the served %s is not a trust anchor' % (
                        current.issuer.rfc4514_string(), current.subject.rfc4514_string() or '(empty subject)')
                return False, False, 'the issuer %s of the leaf is neither served nor a trust anchor' % (
                    current.issuer.rfc4514_string())
            used.add(nxt[0])
            current_der, current = nxt
        return False, False, 'the chain is longer than 12 certificates'

    def name_matches(self, der, name):
        return name_matches(self.cert(der), name, self.lib)

    def judge(self, ders, source, name):
        """Problems (ordered as PROBLEMS) and details for a served chain (remembered: many
        endpoints of one scan usually serve the same chain)."""
        key = (tuple(ders), source, name)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = self._judge(ders, source, name)
        return verdict

    def _judge(self, ders, source, name):
        found = {}
        leaf = self.facts(ders[0])
        if leaf['days_left'] < 0:
            found['expired'] = 'the leaf expired on %s' % leaf['not_after']
        elif leaf['days_left'] < self.warn_days:
            found['expiring_soon'] = 'the leaf expires in %.1f days (%s)' % (leaf['days_left'], leaf['not_after'])
        if cx509._as_utc(leaf['not_before']) > self.now:  # pylint: disable=protected-access
            found['not_yet_valid'] = 'the leaf is valid from %s' % leaf['not_before']
        for index, der in enumerate(ders[1:], 1):
            facts = self.facts(der)
            if facts['days_left'] < 0 and 'expired' not in found:
                found['expired'] = 'served certificate %d (%s) expired on %s' % (index, facts['subject'],
                                                                                 facts['not_after'])
        if name and not self.name_matches(ders[0], name):
            found['name_mismatch'] = '%s is not among the names of the leaf (%s)' % (
                name, ', '.join(leaf['sans']) or 'no SANs, CN ' + leaf['subject'])
        if leaf['self_signed']:
            found['self_signed'] = 'the leaf is self-signed'
        complete, trusted, detail = self.path(ders, source)
        if complete is False:
            found['incomplete_chain'] = detail
        if trusted is False:
            found['untrusted'] = detail or 'no path to a trust anchor'
        weak = []
        sha1 = []
        for index, der in enumerate(ders):
            facts = self.facts(der)
            size = facts['key_size'] or 0
            if (facts['key_type'] in ('RSA', 'DSA') and size < 2048) or (facts['key_type'] == 'ECDSA' and size < 256):
                weak.append('%s %s %d' % ('leaf' if index == 0 else 'certificate %d' % index, facts['key_type'], size))
            if facts['signature_hash'] in ('sha1', 'md5') and not (index > 0 and facts['self_signed']):
                sha1.append('%s signed with %s' % ('leaf' if index == 0 else 'certificate %d' % index,
                                                   facts['signature_hash'].upper()))
        if weak:
            found['weak_key'] = ', '.join(weak)
        if sha1:
            found['sha1_signature'] = ', '.join(sha1)
        problems = [p for p in PROBLEMS if p in found]
        return problems, [dict(problem=p, detail=found[p]) for p in problems], complete, trusted


def verify_signature(cert, issuer, lib):
    """Whether ``issuer``'s key made ``cert``'s signature.  ``verify_directly_issued_by`` first;
    signatures it does not take (SHA-1 in recent cryptography releases) are checked directly with
    the issuer's public key, since a scan must still judge such chains."""
    if hasattr(cert, 'verify_directly_issued_by'):
        try:
            cert.verify_directly_issued_by(issuer)
            return True
        except lib.InvalidSignature:
            return False
        except (ValueError, TypeError):
            pass        # unsupported algorithm: try directly below
    try:
        algorithm = cert.signature_hash_algorithm
        pub = issuer.public_key()
        if isinstance(pub, lib.rsa.RSAPublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, lib.padding.PKCS1v15(), algorithm)
        elif isinstance(pub, lib.ec.EllipticCurvePublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, lib.ec.ECDSA(algorithm))
        elif isinstance(pub, lib.dsa.DSAPublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, algorithm)
        elif isinstance(pub, (lib.ed25519.Ed25519PublicKey, lib.ed448.Ed448PublicKey)):
            pub.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
        return True
    except Exception:  # pylint: disable=broad-except
        return False    # InvalidSignature, or a hash or key this cryptography does not support


def _dns_match(pattern, name):
    """RFC 6125 6.4: case-insensitive; a wildcard only as the whole left-most label of a name
    with at least three labels, matching exactly one non-empty label; no IDNA A-label wildcards."""
    pattern = pattern.lower().rstrip('.')
    name = name.lower().rstrip('.')
    if '*' not in pattern:
        return pattern == name
    labels = pattern.split('.')
    if labels[0] != '*' or '*' in '.'.join(labels[1:]) or len(labels) < 3:
        return False
    parts = name.split('.', 1)
    if len(parts) != 2 or not parts[0] or parts[0].startswith('xn--'):
        return False
    return parts[1] == '.'.join(labels[1:])


def name_matches(cert, name, lib=None):
    """Whether ``name`` (DNS name or IP address) is a name of ``cert`` (SANs; the CN only when
    the certificate has no DNS or IP SAN at all, RFC 6125 6.4.4)."""
    lib = lib or cx509.require_cryptography()
    x509 = lib.x509
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        san = None
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if san is not None:
        if ip is not None:
            return any(value == ip for value in san.get_values_for_type(x509.IPAddress))
        dns = san.get_values_for_type(x509.DNSName)
        if dns or san.get_values_for_type(x509.IPAddress):
            return any(_dns_match(value, name) for value in dns)
    if ip is not None:
        return False
    cns = [attr.value for attr in cert.subject.get_attributes_for_oid(lib.oid.NameOID.COMMON_NAME)]
    return any(isinstance(cn, str) and _dns_match(cn, name) for cn in cns)


# ---------------------------------------------------------------------------------------------
# the scan
# ---------------------------------------------------------------------------------------------

def scan_one(endpoint, ctx, analyzer, timeout):
    got = fetch(endpoint, ctx, timeout)
    result = dict(host=endpoint['host'], address=endpoint['address'], port=endpoint['port'], sni=endpoint['sni'],
                  starttls=endpoint['starttls'], reachable=got['reachable'], handshake=got['handshake'],
                  error=got['error'], protocol=got['protocol'], cipher=got['cipher'], chain=[],
                  chain_source=got['source'], chain_complete=None, trusted=None, problems=[],
                  problem_details=[])
    if not got['ders']:
        if got['handshake'] and not got['error']:
            result['error'] = 'handshake: the server sent no certificate'
        return result
    try:
        result['chain'] = [dict(analyzer.facts(der)) for der in got['ders']]
        name = endpoint['sni'] or endpoint['address']
        problems, details, complete, trusted = analyzer.judge(got['ders'], got['source'], name)
    except ValueError as exc:
        result['error'] = 'the served certificate does not parse: %s' % exc
        return result
    result.update(problems=list(problems), problem_details=[dict(d) for d in details], chain_complete=complete,
                  trusted=trusted)
    return result


def scan(endpoints, concurrency, timeout, analyzer):
    from concurrent.futures import ThreadPoolExecutor
    ctx = client_context()
    if not endpoints:
        return []
    workers = max(1, min(concurrency, len(endpoints)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda e: scan_one(e, ctx, analyzer, timeout), endpoints))


def summarize(results):
    counts = dict((p, 0) for p in PROBLEMS)
    for item in results:
        for problem in item['problems']:
            counts[problem] += 1
    return dict(total=len(results), reachable=sum(1 for r in results if r['reachable']),
                handshakes=sum(1 for r in results if r['handshake']),
                errors=sum(1 for r in results if r['error']),
                with_problems=sum(1 for r in results if r['problems']), problems=counts)


def run(params, now=None):
    endpoints = plan(params)
    analyzer = Analyzer(ca_path=params.get('ca_path'), warn_days=params['warn_days'], now=now)
    analyzer.check_ca_path()
    results = scan(endpoints, params['concurrency'], params['timeout'], analyzer)
    return dict(changed=False, endpoints=results, summary=summarize(results))


def execute(ctx):
    return run(ctx.params)
