"""The simulator's own PKI: one root, an issuing intermediate, the server's TLS certificate
and the API admin's client certificate, all made with cryptography (EC P-256: fast).

    root  "certforge SCM Simulator Root CA"
      +-- intermediate "certforge SCM Simulator Issuing CA"  signs the customer certificates
      +-- server certificate (127.0.0.1, localhost)          the API's TLS certificate
      +-- client certificate (CN = the admin login)          mutual TLS for /private/api

``ca_bundle`` (the root) verifies both the API's TLS certificate and issued chains.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT_NAME = 'certforge SCM Simulator Root CA'
ISSUING_NAME = 'certforge SCM Simulator Issuing CA'
CA_YEARS = 10


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _name(common_name, organization=None, country=None):
    attrs = []
    if country:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode('ascii')


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode('ascii')


def serial_to_colon_hex(serial):
    text = '%X' % serial
    if len(text) % 2:
        text = '0' + text
    return ':'.join(text[i:i + 2] for i in range(0, len(text), 2))


def normalize_serial(text):
    """'0a:1B:..' / '0A1B..' / '0x0a1b' -> int, or None when not hex."""
    cleaned = str(text or '').strip().lower().replace(':', '').replace(' ', '')
    if cleaned.startswith('0x'):
        cleaned = cleaned[2:]
    try:
        return int(cleaned, 16) if cleaned else None
    except ValueError:
        return None


class SimulatorPKI:
    """Keys and certificates of one simulator instance; ``write(directory)`` stores the files
    clients need and returns their paths."""

    def __init__(self, login, server_names=('127.0.0.1', 'localhost')):
        now = _utcnow()
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca(_name(ROOT_NAME, 'certforge simulators', 'GB'), self.root_key, None,
                             None, now, path_length=1)
        self.issuing_key = ec.generate_private_key(ec.SECP256R1())
        self.issuing = self._ca(_name(ISSUING_NAME, 'certforge simulators', 'GB'), self.issuing_key,
                                self.root, self.root_key, now, path_length=0)
        self.server_key = ec.generate_private_key(ec.SECP256R1())
        self.server = self._end_entity(server_names[0], self.server_key, server_names,
                                       ExtendedKeyUsageOID.SERVER_AUTH, now)
        self.client_key = ec.generate_private_key(ec.SECP256R1())
        self.client = self._end_entity(login, self.client_key, (), ExtendedKeyUsageOID.CLIENT_AUTH, now)
        # one key for seeded records that have no CSR (collect signs them lazily)
        self.seed_key = ec.generate_private_key(ec.SECP256R1())
        self.root_pem = pem(self.root)
        self.issuing_pem = pem(self.issuing)

    @staticmethod
    def _ca(subject, key, issuer, issuer_key, now, path_length):
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(issuer.subject if issuer is not None else subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                  critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        return builder.sign(issuer_key or key, hashes.SHA256())

    def _end_entity(self, common_name, key, names, usage, now):
        builder = (x509.CertificateBuilder().subject_name(_name(common_name))
                   .issuer_name(self.root.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.root_key.public_key()), critical=False))
        if names:
            general = []
            for entry in names:
                try:
                    general.append(x509.IPAddress(ipaddress.ip_address(entry)))
                except ValueError:
                    general.append(x509.DNSName(entry))
            builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
        return builder.sign(self.root_key, hashes.SHA256())

    def sign_leaf(self, public_key, serial, common_name, names, not_before, not_after,
                  organization=None, country=None):
        """A TLS server certificate signed by the issuing CA; returns the certificate."""
        general = []
        for entry in names:
            try:
                general.append(x509.IPAddress(ipaddress.ip_address(entry)))
            except ValueError:
                general.append(x509.DNSName(entry))
        builder = (x509.CertificateBuilder().subject_name(_name(common_name, organization, country))
                   .issuer_name(self.issuing.subject).public_key(public_key).serial_number(serial)
                   .not_valid_before(not_before).not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                         ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.issuing_key.public_key()), critical=False))
        if general:
            builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
        return builder.sign(self.issuing_key, hashes.SHA256())

    def pkcs7(self, certs, der=False):
        encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
        return pkcs7.serialize_certificates(certs, encoding)

    def write(self, directory, login, p12_passphrase):
        """Write ca.pem, server.pem/server.key, client.pem/client.key/client.p12; return paths."""
        os.makedirs(directory, exist_ok=True)
        paths = {
            'ca_bundle': os.path.join(directory, 'ca.pem'),
            'issuing_ca': os.path.join(directory, 'issuing-ca.pem'),
            'server_cert': os.path.join(directory, 'server.pem'),
            'server_key': os.path.join(directory, 'server.key'),
            'client_cert': os.path.join(directory, 'client.pem'),
            'client_key': os.path.join(directory, 'client.key'),
            'client_p12': os.path.join(directory, 'client.p12'),
        }
        p12 = pkcs12.serialize_key_and_certificates(
            login.encode(), self.client_key, self.client, [self.root],
            serialization.BestAvailableEncryption(p12_passphrase.encode()))
        contents = {
            'ca_bundle': self.root_pem,
            'issuing_ca': self.issuing_pem,
            'server_cert': pem(self.server),
            'server_key': key_pem(self.server_key),
            'client_cert': pem(self.client),
            'client_key': key_pem(self.client_key),
            'client_p12': p12,
        }
        for name, path in paths.items():
            data = contents[name]
            if isinstance(data, str):
                data = data.encode('ascii')
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, 'wb') as handle:
                handle.write(data)
        return paths
