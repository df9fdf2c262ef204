"""Fixtures for tests that talk to the Sectigo Certificate Manager simulator
(tests/simulators/sectigo_scm, documented in docs/sectigo-simulator.md).

``sectigo_sim`` -- a started simulator on a free 127.0.0.1 port (HTTPS; a client certificate is
optional on the handshake and required by /private/api), stopped in a finalizer even when the
test fails.  It is the ``Simulator`` object itself:

    Connection facts
      sim.base_url            'https://127.0.0.1:<port>/api'          (password mode)
      sim.private_base_url    'https://127.0.0.1:<port>/private/api'  (client-certificate mode)
      sim.url, sim.control_url ('.../__sim'), sim.port
      sim.customer_uri, sim.login, sim.password            the API admin (requester)
      sim.approver_login, sim.approver_password            a second admin (may approve EV)
      sim.ca_bundle           PEM root that verifies the API's TLS certificate and issued chains
      sim.issuing_pem, sim.root_pem                        the issuing intermediate / root as text
      sim.client_cert, sim.client_key                      PEM client certificate (CN = login) + key
      sim.client_p12, sim.client_p12_passphrase            the same as PKCS#12
      sim.headers(password=True) -> {'login', 'password', 'customerUri'}
      sim.session(certificate=False) -> requests.Session ready to use (trust_env off)

    Time and workflow
      sim.now() / sim.advance(seconds)    simulated clock (frozen unless advanced); DV issues 5 s
                                          after enroll, OV 60 s, EV 10 s after approval
      sim.approve(ssl_id) / sim.decline(ssl_id)   as the second admin
      sim.set_status(ssl_id, 'Rejected')  force a status
      sim.configure(pending_code=0|-183|-1400, unknown_id='not_found'|'wrong_id',
                    revoke_requires_reason_code=False, issue_delays={'DV': 5, 'OV': 60, 'EV': 10},
                    profile_delays={profile_id: seconds})

    Faults (each targets method + a glob on the path after /api, e.g. '/ssl/v1/collect/*')
      sim.fault(kind, path='*', method='*', times=1, skip=0, **params) -> fault id
          'rate_limit'    429 + Retry-After (retry_after=1)
          'server_error'  503 (status=500/502/504 ...)
          'status'        any status=, code=, description=, retry_after=, headers=
          'delay'         delay= seconds, then the normal answer
          'reset'         connection cut before the request is processed
          'drop'          request processed (the order exists), connection cut, no answer
      sim.clear_faults(); sim.faults() -> [dict]

    Audit and inspection
      sim.audit(method=None, path=None, since=0) -> [ {seq, method, path, route, query, auth,
          login, status, code, fault, time, wall, ssl_id?, common_name?} ]
      sim.clear_audit()
      sim.enroll_count(common_name=None)  orders created by enroll (answer lost or not)
      sim.orders(common_name=None, include_seeded=False) -> [details + renewId, origin, ...]
      sim.order(ssl_id) -> details;  sim.renew_id(ssl_id)
      sim.seed(n, seed=0) -> [ssl ids]    n existing records (mixed status/profile/org/expiry)

``sectigo_sim_factory(**kw)`` -- start more simulators with other settings (``mtls=True``,
``pending_code=-183``, ``seed=5000``, ``realtime=True`` ...); all are stopped after the test.
"""

import sys
from pathlib import Path

import pytest

try:
    from ansible_collections.certforge.pki.tests.simulators.sectigo_scm import Simulator, catalog
except ImportError:  # run without the build/collections link on PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from tests.simulators.sectigo_scm import Simulator, catalog  # noqa: E402  pylint: disable=import-error

__all__ = ['catalog', 'sectigo_sim', 'sectigo_sim_factory']


@pytest.fixture
def sectigo_sim_factory(tmp_path):
    started = []

    def start(**kw):
        kw.setdefault('workdir', str(tmp_path / ('scm-sim-%d' % len(started))))
        sim = Simulator(**kw)
        started.append(sim)
        return sim.start()

    try:
        yield start
    finally:
        for sim in started:
            sim.stop()


@pytest.fixture
def sectigo_sim(sectigo_sim_factory):
    return sectigo_sim_factory()
