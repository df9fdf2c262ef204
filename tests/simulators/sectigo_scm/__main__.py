"""Command line: ``python -m tests.simulators.sectigo_scm --port 8443 --tls [--seed N]``.

Runs until interrupted; prints the base URLs, the demo credentials and the files it wrote.
"""

import argparse
import json
import os
import signal
import sys
import threading

from .server import DEFAULT_CUSTOMER_URI, DEFAULT_LOGIN, Simulator


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tests.simulators.sectigo_scm',
                                     description='Sectigo Certificate Manager REST API simulator')
    parser.add_argument('--host', default='127.0.0.1', help='loopback address to bind (default 127.0.0.1)')
    parser.add_argument('--port', type=int, default=8443, help='port (0: any free port; default 8443)')
    parser.add_argument('--tls', action='store_true', help='serve HTTPS (client certificate optional; '
                        '/private/api needs one)')
    parser.add_argument('--mtls', action='store_true', help='serve HTTPS and require a client certificate '
                        'on every connection')
    parser.add_argument('--seed', type=int, default=0, metavar='N', help='create N existing certificates')
    parser.add_argument('--realtime', action='store_true',
                        help='the clock follows real time (default: frozen until POST /__sim/advance)')
    parser.add_argument('--dir', default=None, help='directory for the CA bundle and client files '
                        '(default: a new temporary directory, removed on exit)')
    parser.add_argument('--pending-code', type=int, default=0, choices=(0, -183, -1400),
                        help='error code of the collect "not ready" answer (default 0)')
    parser.add_argument('--login', default=DEFAULT_LOGIN, help='the API admin login (default %(default)s)')
    parser.add_argument('--customer-uri', default=DEFAULT_CUSTOMER_URI,
                        help='the customer URI (default %(default)s)')
    parser.add_argument('--issue-delay', type=float, metavar='SECONDS',
                        help='seconds until an order is issued, for every validation type '
                        '(default: DV 5, OV 60, EV 10)')
    parser.add_argument('--server-cert', metavar='PEM',
                        help='TLS certificate chain to serve instead of the own one (with --server-key)')
    parser.add_argument('--server-key', metavar='PEM', help='key of --server-cert')
    parser.add_argument('--client-ca', metavar='PEM',
                        help='CA certificates that sign accepted client certificates (default: the own root)')
    parser.add_argument('--verbose', action='store_true', help='log every request to stderr')
    args = parser.parse_args(argv)
    if bool(args.server_cert) != bool(args.server_key):
        parser.error('--server-cert and --server-key go together')

    workdir = os.path.abspath(args.dir) if args.dir else None
    sim = Simulator(host=args.host, port=args.port, tls=args.tls, mtls=args.mtls, realtime=args.realtime,
                    workdir=workdir, seed=args.seed, pending_code=args.pending_code, verbose=args.verbose,
                    login=args.login, customer_uri=args.customer_uri,
                    issue_delays=(dict.fromkeys(('DV', 'OV', 'EV'), args.issue_delay)
                                  if args.issue_delay is not None else None),
                    server_cert=args.server_cert, server_key=args.server_key, client_ca=args.client_ca)
    sim.start()
    info = {
        'base_url': sim.base_url,
        'private_base_url': sim.private_base_url if sim.tls else None,
        'control_url': sim.control_url,
        'customer_uri': sim.customer_uri,
        'login': sim.login,
        'password': sim.password,
        'approver_login': sim.approver_login,
        'approver_password': sim.approver_password,
        'ca_bundle': sim.ca_bundle,
        'client_cert': sim.client_cert,
        'client_key': sim.client_key,
        'client_p12': sim.client_p12,
        'client_p12_passphrase': sim.client_p12_passphrase,
        'clock': 'realtime' if args.realtime else 'simulated (POST /__sim/advance {"seconds": N})',
        'seeded': args.seed,
    }
    print(json.dumps(info, indent=2), flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *dummy: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
