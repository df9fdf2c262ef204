"""A faithful simulator of the Sectigo Certificate Manager (SCM) REST API.

    from tests.simulators.sectigo_scm import start_simulator
    with start_simulator(seed=5000) as sim:
        requests.get(sim.base_url + '/ssl/v1', headers=sim.headers(), verify=sim.ca_bundle)

See docs/sectigo-simulator.md for the endpoints, the choices made where the API reference is
silent, the control API and the command line (``python -m tests.simulators.sectigo_scm``).
"""

from . import catalog
from .server import (DEFAULT_APPROVER, DEFAULT_APPROVER_PASSWORD, DEFAULT_CUSTOMER_URI, DEFAULT_LOGIN,
                     DEFAULT_P12_PASSPHRASE, DEFAULT_PASSWORD, Fault, Simulator, start_simulator)
from .state import ApiError, SimClock, Tenant

__all__ = ['catalog', 'ApiError', 'Fault', 'SimClock', 'Simulator', 'Tenant', 'start_simulator',
           'DEFAULT_LOGIN', 'DEFAULT_PASSWORD', 'DEFAULT_CUSTOMER_URI', 'DEFAULT_APPROVER',
           'DEFAULT_APPROVER_PASSWORD', 'DEFAULT_P12_PASSPHRASE']
