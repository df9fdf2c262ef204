# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certforge.pki connector SDK: the one import surface for connector authors.

Everything a connector needs comes from here; nothing else in the collection is promised::

    from ansible_collections.certforge.pki.plugins.module_utils.sdk import (
        IssuerConnector, Order, ORDER_ISSUED, hookimpl)

    class MyCA(IssuerConnector):
        name = 'my_ca'
        option_spec = {'url': {'type': 'str', 'required': True},
                       'password': {'type': 'str', 'no_log': True}}

        def submit(self, request): ...
        def poll(self, order): ...
        def revoke(self, revocation): ...
        def find_orders(self, request): ...

    @hookimpl
    def certforge_issuers():
        return {'my_ca': MyCA}

Ship it as a pip package with an entry point in the group ``certforge.pki`` naming the module
that holds the ``@hookimpl`` functions.  Issuers and notifiers are installed on the controller
(the execution environment for AWX/AAP), targets on the host that runs the deploy.  Run the
conformance kit against it (see ``docs/connectors.md``)::

    python -m ansible_collections.certforge.pki.plugins.plugin_utils.connector_kit \\
        --issuer my_ca --setup my_package.kit_setup

The contract is versioned: ``SDK_VERSION`` changes only when it changes incompatibly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.certforge.pki.plugins.module_utils.core.connectors import (  # noqa: F401
    IssuerConnector,
    NotifierConnector,
    TargetConnector,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (  # noqa: F401
    AuthError,
    CertforgeError,
    ConfigError,
    DeployError,
    NotReadyError,
    PermanentError,
    PolicyError,
    TransientError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import (  # noqa: F401
    ENTRY_POINT_GROUP,
    hookimpl,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.model import (  # noqa: F401
    ORDER_FAILED,
    ORDER_ISSUED,
    ORDER_PENDING,
    ORDER_REVOKED,
    REVOCATION_REASONS,
    Applied,
    CertificateRequest,
    DeployRequest,
    Event,
    FileSpec,
    Order,
    Plan,
    RenewalWindow,
    Revocation,
    reason_code,
)

#: The version of the connector contract this collection implements.
SDK_VERSION = 1

__all__ = [
    'SDK_VERSION', 'ENTRY_POINT_GROUP', 'hookimpl',
    'IssuerConnector', 'TargetConnector', 'NotifierConnector',
    'CertificateRequest', 'Order', 'Revocation', 'RenewalWindow', 'DeployRequest', 'FileSpec',
    'Plan', 'Applied', 'Event', 'reason_code', 'REVOCATION_REASONS',
    'ORDER_PENDING', 'ORDER_ISSUED', 'ORDER_FAILED', 'ORDER_REVOKED',
    'CertforgeError', 'ConfigError', 'AuthError', 'PolicyError', 'NotReadyError', 'TransientError',
    'PermanentError', 'DeployError',
]
