"""The local CA's cost does not grow with its history.

Prints:

    RATIO local_ca_sign_20k_vs_empty <x>     100 signatures (each with its own order token, as the
                                             issue path signs) by a CA with 20,000 earlier
                                             certificates vs the same by a new CA, same run;
                                             goal <= 1.5
    RATIO local_ca_lookup_20k_vs_empty <x>   100 token lookups + profile lookups, same shapes

The 20,000-record history is written as the CA writes records (one record, one PEM and one token
file per serial); signing them one by one would only make the bench slow.
"""

import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'build', 'collections'))

# pylint: disable=wrong-import-position
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from ansible_collections.certforge.pki.plugins.module_utils import local_ca_modules as lcm  # noqa: E402
from ansible_collections.certforge.pki.plugins.module_utils.issuers import local_ca  # noqa: E402

HISTORY = int(os.environ.get('BENCH_LOCAL_CA_HISTORY', '20000'))
SIGNATURES = 100


class Ctx:
    def __init__(self, params):
        from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
        res = ArgumentSpecValidator(**lcm.LOCAL_CA_SPEC.kwargs()).validate(params)
        assert not res.error_messages, res.error_messages
        self.params = res.validated_parameters
        self.check_mode = False
        self.diff = False
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)


def make_ca(path):
    lcm.execute_local_ca(Ctx(dict(path=path, common_name='Bench Root CA')))
    return local_ca.LocalCA(path).load()


def csrs(count):
    key = ec.generate_private_key(ec.SECP256R1())
    out = []
    for i in range(count):
        name = 'host%d.bench.test' % i
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
               .sign(key, hashes.SHA256()))
        out.append(csr.public_bytes(serialization.Encoding.PEM).decode())
    return out


def fill_history(ca, count):
    """``count`` records as the CA keeps them (record, PEM and token files per serial)."""
    for directory in ('records', 'certs', 'tokens'):
        os.makedirs(os.path.join(ca.path, directory), mode=0o700, exist_ok=True)
    pem = ca.cert_pem
    for i in range(count):
        serial = local_ca.normalize_serial('%X' % (0x10 ** 30 + i))
        record = dict(serial=serial, name='old%d' % i, token='%032x' % i, profile='tls_server',
                      subject='CN=old%d.bench.test' % i, subject_alt_names=['DNS:old%d.bench.test' % i],
                      not_before='2026-01-01T00:00:00Z', not_after='2026-04-01T00:00:00Z',
                      issued_at='2026-01-01T00:00:00Z', status='valid')
        with open(os.path.join(ca.path, 'records', serial + '.json'), 'w') as handle:
            json.dump(record, handle)
        with open(os.path.join(ca.path, 'certs', serial + '.pem'), 'w') as handle:
            handle.write(pem)
        with open(os.path.join(ca.path, 'tokens', record['token']), 'w') as handle:
            handle.write(serial + '\n')


def sign_all(ca, requests, tag):
    signed = []
    start = time.perf_counter()
    for i, csr in enumerate(requests):
        token = '%s%030x' % (tag, i)
        dummy, record = ca.sign(csr, validity_days=30, name='new%d' % i, token=token)
        signed.append((token, record['serial']))
    return time.perf_counter() - start, signed


def lookups(ca, signed):
    """What the issue path asks the CA: the order of a token, the profile of a serial."""
    start = time.perf_counter()
    for token, serial in signed:
        assert ca.find(token=token)[0]['serial'] == serial
        assert ca.record(serial)['profile'] == 'tls_server'
    return time.perf_counter() - start


def main():
    work = tempfile.mkdtemp(prefix='certforge-bench-ca-')
    try:
        requests = csrs(SIGNATURES)
        times = {'empty': [], 'history': []}
        look = {'empty': [], 'history': []}
        empty = make_ca(os.path.join(work, 'empty'))
        aged = make_ca(os.path.join(work, 'aged'))
        fill_history(aged, HISTORY)
        for rnd in range(3):          # alternate, so machine noise hits both sides alike
            for kind, ca in (('empty', empty), ('history', aged)):
                took, signed = sign_all(ca, requests, '%x%s' % (rnd, kind[0]))
                times[kind].append(took)
                look[kind].append(lookups(ca, signed))
        t_empty, t_aged = statistics.median(times['empty']), statistics.median(times['history'])
        l_empty, l_aged = statistics.median(look['empty']), statistics.median(look['history'])
        print('bench: local CA, %d signatures: new CA %.3f s, with %d earlier certificates %.3f s'
              % (SIGNATURES, t_empty, HISTORY, t_aged), file=sys.stderr)
        print('RATIO local_ca_sign_20k_vs_empty %.3f' % (t_aged / t_empty), flush=True)
        print('RATIO local_ca_lookup_20k_vs_empty %.3f' % (l_aged / l_empty), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
