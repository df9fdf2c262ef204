"""Shared by the TLS-trust tests of the Sectigo and ACME families: a CA bundle that verifies
nothing the servers present, and a snapshot of a directory tree."""

import datetime
import hashlib
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def write_wrong_bundle(path):
    """A self-signed CA that issued nothing any test server presents (PEM at ``path``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'Unrelated CA')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


#: sha256 of an empty file
EMPTY = hashlib.sha256(b'').hexdigest()


def snapshot(root):
    """{relative path: sha256 or 'dir'} of everything under ``root``."""
    out = {}
    for base, dirs, files in os.walk(str(root)):
        for name in dirs:
            out[os.path.relpath(os.path.join(base, name), str(root))] = 'dir'
        for name in files:
            path = os.path.join(base, name)
            with open(path, 'rb') as handle:
                out[os.path.relpath(path, str(root))] = hashlib.sha256(handle.read()).hexdigest()
    return out
