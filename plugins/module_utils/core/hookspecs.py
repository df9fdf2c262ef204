# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pluggy markers and hook specifications (public contract).

A connector package implements any of these with ``@hookimpl``::

    from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import hookimpl

    class MyCA:
        name = 'my_ca'
        def __init__(self, options): ...
        def submit(self, request): ...

    @hookimpl
    def certforge_issuers():
        return {'my_ca': MyCA}

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

        An issuer class is built as ``cls(options: dict)`` and offers ``name``, ``submit``,
        ``poll``, ``revoke``, ``ca_chain``, ``renewal_window`` and ``find_orders``
        (see ``IssuerConnector``)."""

    @hookspec
    def certforge_targets(self):
        """Return ``{name: class}`` of target connectors this plugin provides.

        A target class is built as ``cls(options: dict, runner)`` and offers ``plan``,
        ``apply``, ``validate``, ``reload``, ``verify`` and ``rollback``
        (see ``TargetConnector``)."""

    @hookspec
    def certforge_check_request(self, request, issuer):
        """Veto a request before it is submitted: raise ``PolicyError`` or return a list of
        reasons (strings) to refuse it; return None or [] to allow it."""

    @hookspec
    def certforge_event(self, event):
        """Observe lifecycle events (``core.model.Event``).  Return value is ignored;
        exceptions are caught and turned into warnings."""


class IssuerConnector:
    """Documentation base class for issuer connectors.  Each call does one round of work
    and never sleeps: waiting belongs to ``core.polling``.

    ``fingerprint_ignore`` names issuer options that do not change what is ordered
    (credentials, URLs, timeouts): they are left out of the order fingerprint, so changing them
    while an order is pending resumes that order instead of placing another."""

    name = None
    fingerprint_ignore = ()

    def __init__(self, options):
        self.options = dict(options or {})

    def submit(self, request):
        """Enroll ``request`` (``model.CertificateRequest``); return a ``model.Order``,
        possibly already issued."""
        raise NotImplementedError

    def poll(self, order):
        """One status/collect check; return the updated ``model.Order``."""
        raise NotImplementedError

    def check(self, request):
        """Optional: raise ConfigError/PolicyError for a request the CA would refuse, with no
        side effect.  Called before the order intent is recorded, so bad input leaves no trace."""
        return None

    def revoke(self, revocation):
        """Revoke (``model.Revocation``)."""
        raise NotImplementedError

    def ca_chain(self):
        """PEM of the CA chain, or None when unknown."""
        return None

    def renewal_window(self, cert_pem):
        """A CA-advised ``model.RenewalWindow`` (ARI), or None to use local policy."""
        return None

    def find_orders(self, request):
        """Orders the CA already has for ``request`` (to recover a lost submit answer)."""
        return []


class TargetConnector:
    """Documentation base class for target connectors.

    A target may also declare ``option_spec()`` (a classmethod returning an Ansible argument
    spec of its target-level options, checked by the generic ``deploy`` module against
    ``target_options``) and ``certificate_options`` (the per-certificate option names it reads,
    e.g. ``verify``).  Without ``option_spec`` the target checks its options itself."""

    name = None
    certificate_options = ()
    option_spec = None      # or a classmethod returning the argument spec of target_options

    def __init__(self, options, runner):
        self.options = dict(options or {})
        self.runner = runner

    def plan(self, request):
        raise NotImplementedError

    def apply(self, plan):
        raise NotImplementedError

    def validate(self, applied):
        return None

    def reload(self, applied):
        return None

    def verify(self, applied):
        return None

    def rollback(self, applied):
        raise NotImplementedError
