# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pluggy markers and hook specifications (public contract).

A connector package implements any of these with ``@hookimpl``; it imports everything from
the SDK module (``plugins.module_utils.sdk``), never from here::

    from ansible_collections.certforge.pki.plugins.module_utils.sdk import IssuerConnector, hookimpl

    class MyCA(IssuerConnector):
        name = 'my_ca'
        def submit(self, request): ...
        def poll(self, order): ...
        def revoke(self, revocation): ...
        def find_orders(self, request): ...

    @hookimpl
    def certforge_issuers():
        return {'my_ca': MyCA}

A class that does not subclass the SDK base class, or leaves one of its abstract methods open,
is refused when the plugin registers, naming the missing methods.

and is registered either by a module (built-ins) or through the ``certforge.pki``
entry-point group (third parties, controller side only).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

PROJECT_NAME = 'certforge'
ENTRY_POINT_GROUP = 'certforge.pki'

try:
    import pluggy
    HAS_PLUGGY = True
    PLUGGY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by the import sanity test
    pluggy = None
    HAS_PLUGGY = False
    PLUGGY_IMPORT_ERROR = exc


class _NoopMarker:
    """Stands in for pluggy's markers when pluggy is missing, so modules still import and can
    report ``missing_required_lib('pluggy')`` instead of a traceback."""

    def __init__(self, project_name):
        self.project_name = project_name

    def __call__(self, function=None, **kwargs):
        if function is None:
            return lambda f: f
        return function


if HAS_PLUGGY:
    hookspec = pluggy.HookspecMarker(PROJECT_NAME)
    hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
else:  # pragma: no cover
    hookspec = _NoopMarker(PROJECT_NAME)
    hookimpl = _NoopMarker(PROJECT_NAME)


class CertforgeSpecs:
    """The hooks.  Small and named for what they do."""

    @hookspec
    def certforge_issuers(self):
        """Return ``{name: class}`` of issuer connectors this plugin provides.

        Each class subclasses ``sdk.IssuerConnector`` (see its docstrings for every method).
        Issuers run on the controller."""

    @hookspec
    def certforge_targets(self):
        """Return ``{name: class}`` of target connectors this plugin provides.

        Each class subclasses ``sdk.TargetConnector``: it declares the files it writes and how
        to validate, reload and verify; the core owns the transaction, backups, rollback and the
        single reload.  Targets run on the host that runs the deploy."""

    @hookspec
    def certforge_notifiers(self):
        """Return ``{name: class}`` of notifier connectors (``sdk.NotifierConnector``).
        Notifiers run on the controller."""

    @hookspec
    def certforge_check_request(self, request, issuer):
        """Veto a request before it is submitted: raise ``PolicyError`` or return a list of
        reasons (strings) to refuse it; return None or [] to allow it."""

    @hookspec
    def certforge_event(self, event):
        """Observe lifecycle events (``core.model.Event``).  Return value is ignored;
        exceptions are caught and turned into warnings."""


# The connector base classes live in core.connectors; connector authors import them (and
# everything else they need) from plugins.module_utils.sdk.  Kept here for older imports.
from ansible_collections.certforge.pki.plugins.module_utils.core.connectors import (  # noqa: E402,F401
    IssuerConnector,
    NotifierConnector,
    TargetConnector,
)

__all__ = ['PROJECT_NAME', 'ENTRY_POINT_GROUP', 'HAS_PLUGGY', 'hookspec', 'hookimpl', 'CertforgeSpecs',
           'IssuerConnector', 'TargetConnector', 'NotifierConnector']
