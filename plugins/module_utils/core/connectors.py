# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Abstract base classes of the three connector kinds (public contract, SDK v1).

Connector authors import them from ``plugins.module_utils.sdk``, never from here.  Every
connector class subclasses one of them; the registry refuses, when a plugin registers, a class
that does not or that leaves an abstract method open, naming the missing methods.

Where they run:

* issuers and notifiers: on the controller (in the execution environment for AWX/AAP);
* targets: on the host that runs the deploy (the managed host, or the controller when the
  deploy is delegated there).

Install a connector package for the Python interpreter of the place it runs.  A package that
fails to import breaks only the connectors it provides.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import abc
import copy

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError


def _spec_of(cls, attribute):
    spec = getattr(cls, attribute, None)
    if spec is None:
        return {}
    if callable(spec):
        spec = spec()
    return copy.deepcopy(dict(spec or {}))


class Connector(abc.ABC):
    """What every connector kind shares: a ``name`` and an option spec.

    ``option_spec`` is an Ansible argument spec (``{name: {type, choices, default, no_log,
    required, elements, options, aliases}}``), a dict or a classmethod returning one.  The core
    checks the user's options against it before the connector is built, exactly as a module's
    own options are checked: unknown keys are refused naming the closest valid key, types are
    converted, defaults filled in, and the values of ``no_log`` options are hidden in results,
    errors and ``-vvvv`` output.  ``option_required_if``, ``option_required_one_of``,
    ``option_mutually_exclusive`` and ``option_required_together`` take the forms of the
    AnsibleModule arguments of the same names.  An empty spec (the default) means the connector
    takes no options."""

    #: the name users give (``issuer: my_ca``, ``target: my_target``)
    name = None
    option_spec = {}
    option_required_if = ()
    option_required_one_of = ()
    option_mutually_exclusive = ()
    option_required_together = ()

    @classmethod
    def options_argument_spec(cls):
        """The argument spec of the connector's options (a deep copy)."""
        return _spec_of(cls, 'option_spec')


# ---------------------------------------------------------------------------------------------
# issuers
# ---------------------------------------------------------------------------------------------

class IssuerConnector(Connector):
    """A certificate authority.  Runs on the controller.

    Built as ``cls(options)``: ``options`` are ``issuer_options`` checked against
    ``option_spec`` (unset options without a default are left out).  The constructor must not
    call the CA.

    Each method does ONE round of work and never sleeps: waiting (backoff, deadline,
    ``Retry-After``) belongs to the core, so every CA waits the same way.  Blocking network I/O
    with a bounded timeout is fine.

    Errors (from the SDK) and what the core does with them:

    * ``ConfigError`` / ``AuthError`` / ``PolicyError`` raised by ``submit``: refused outright;
      the order intent is forgotten and the task fails with the message, the option and the fix.
    * ``TransientError(retry_after=seconds)``: a temporary failure; the core retries within the
      task's deadline (waiting at least ``retry_after``), else the task reports ``pending`` and the
      next run resumes.
    * ``NotReadyError(retry_after=...)`` from ``poll``: not done yet, same as returning a pending
      order.
    * ``PermanentError`` (or an order with ``status='failed'``) from ``poll``: the order is dead;
      the run ends at once as failed with the CA's reason, and the next run orders afresh.

    A rejection is always raised, never returned as an order.  ``Order.details`` must be
    JSON-safe (it is stored in the order store) and must never hold a secret.
    """

    #: issuer options that do not change WHAT is ordered (credentials, URLs, timeouts): left
    #: out of the order fingerprint so changing them while an order is pending resumes it.
    fingerprint_ignore = ()

    #: True when ``find_orders`` can find an order at the CA by ``request.token`` (or by what
    #: the CA keeps of the request): the core then asks before a first submit when the order
    #: store has no record of the certificate (a fresh AWX job, a deleted store), so a
    #: controller with an empty store never orders twice.  The token is derived from the
    #: request identity and the certificate it replaces: store it at the CA where you can.
    searchable = False

    #: Seconds after an interrupted submit (killed run, lost answer) during which the core
    #: keeps asking ``find_orders`` before it submits again: a CA may commit a request after
    #: its answer was lost.  ``None``: the core's default (30 s); the ``recover_window``
    #: module option overrides it.
    commit_window = None

    def __init__(self, options):
        self.options = dict(options or {})
        #: strings the core adds to the task's warnings after the call
        self.warnings = []

    @abc.abstractmethod
    def submit(self, request):
        """Place an order.

        :param request: ``CertificateRequest``: ``name``, ``csr_pem``, the parsed CSR facts
            (``common_name``, ``subject_alt_names`` as ``['DNS:x', 'IP:1.2.3.4']``, ``key_type``),
            ``profile``, ``validity_days``, ``issuer_options``, the idempotency ``token`` (mark the
            order with it at the CA when the CA can store one, so ``find_orders`` can find it),
            and the certificate being replaced (``replaces`` PEM, ``replaces_serial`` hex,
            ``replaces_id`` the CA's id for it when known: renew or replace it instead of
            ordering anew where the CA supports that).
        :returns: ``Order`` with the CA's ``id``; ``status='issued'`` with ``certificate_pem`` (and
            ``chain_pem``, issuer first) when the CA answers at once, else ``'pending'``.
        :raises: ``ConfigError``/``AuthError``/``PolicyError`` for a refusal (nothing ordered),
            ``TransientError`` when the CA could not be reached (the answer may be lost: the
            core asks ``find_orders`` before submitting again).
        May block on network I/O (bounded by a timeout); never sleeps to wait for issuance."""

    @abc.abstractmethod
    def poll(self, order):
        """Check an order once and collect the certificate when it is ready.

        :param order: the ``Order`` last returned (``id``, ``details`` as stored).
        :returns: the updated ``Order``: ``issued`` with ``certificate_pem``, or ``pending``
            (optionally ``retry_after`` seconds), or ``failed`` with ``error`` (the CA's reason).
        :raises: ``PermanentError`` when the CA refused the order for good (same as ``failed``),
            ``NotReadyError``/``TransientError`` to be asked again later."""

    @abc.abstractmethod
    def revoke(self, revocation):
        """Revoke a certificate.

        :param revocation: ``Revocation``: ``certificate_pem``, ``serial`` (hex), ``reason``
            (RFC 5280 name such as ``key_compromise``; ``reason_code()`` gives the number),
            ``order_id`` (the CA's id when known).
        :returns: anything (ignored).  Revoking a certificate that is already revoked must not
            fail.
        :raises: ``ConfigError`` for an unknown certificate, ``PermanentError`` when the CA
            refuses, ``TransientError`` when it cannot be reached."""

    @abc.abstractmethod
    def find_orders(self, request):
        """Orders the CA already holds for ``request`` (matched by ``request.token``, else by the
        request's name and identifiers).  Used after a submit whose answer was lost, so a rerun
        adopts that order instead of ordering twice.

        :returns: a list of ``Order`` (oldest first; the core adopts the last one with an id);
            ``[]`` when the CA cannot search or has none."""

    def check(self, request):
        """Optional: refuse a request the CA would refuse (``ConfigError``/``PolicyError``), with
        no side effect.  Called before the order intent is recorded, so bad input leaves no
        trace."""
        return None

    def ca_chain(self):
        """The CA chain as PEM text (issuer first), or None when unknown.  The core uses it when
        an issued order brings no chain.  May block on network I/O."""
        return None

    def renewal_window(self, cert_pem):
        """A CA-advised ``RenewalWindow`` (ACME ARI) for ``cert_pem``, or None to use the local
        policy (``renew_before_days``/``renew_at_fraction``)."""
        return None


# ---------------------------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------------------------

class TargetConnector(Connector):
    """A server or store certificates are deployed to.  Runs on the host that runs the deploy.

    Built as ``cls(options, runner)``: ``options`` are ``target_options`` checked against
    ``option_spec`` plus the core's file options (``backup_dir``, ``backup_retention``);
    ``runner.run_command(argv) -> (rc, stdout, stderr)`` runs a command without a shell (use
    ``self.run(argv, option)``).

    A target declares only WHAT it writes (``files``) and how to ``validate``, ``reload`` and
    ``verify``.  The core owns everything else: it plans (compares bytes, mode and owner), shows
    the diff (parsed certificate facts, never key material), writes every file of every
    certificate of the call in ONE transaction (temp file, fsync, rename, byte-exact backups),
    calls ``validate`` and ``reload`` once for the whole call and ``verify`` per certificate,
    and on any failure restores every file byte-exact and reloads again.  In check mode, or
    when nothing changes, only ``files`` is called.

    Per-certificate options: ``certificate_options`` names the standard per-certificate options
    the target reads (``certificate_path``, ``chain_path``, ``fullchain_path``, ``key_path``,
    ``owner``, ``group``, ``mode``, ``verify``), and ``certificate_option_spec`` is an argument
    spec of the target's own per-certificate options (the deploy module's
    ``certificate_options``), checked like ``option_spec``.
    """

    certificate_options = ('certificate_path', 'chain_path', 'fullchain_path', 'key_path', 'owner',
                           'group', 'mode', 'verify')
    certificate_option_spec = {}

    def __init__(self, options, runner=None):
        self.options = dict(options or {})
        self.runner = runner
        #: strings the core adds to the task's warnings
        self.warnings = []

    @classmethod
    def certificate_argument_spec(cls):
        """The argument spec of the target's own per-certificate options (a deep copy)."""
        return _spec_of(cls, 'certificate_option_spec')

    @abc.abstractmethod
    def files(self, request):
        """What to write for one certificate.

        :param request: ``DeployRequest``: ``name``; ``certificate_pem`` (the leaf alone,
            normalised PEM); ``chain_pem`` (list of PEM blocks, issuer first); ``key_path`` (the
            private key on this host, or None); ``options`` (the standard per-certificate options
            listed in ``certificate_options``, plus ``option_prefix`` for error names);
            ``certificate_options`` (the target's own per-certificate options, checked).
        :returns: a list of ``FileSpec(path, content, mode, owner, group, label, option)``:
            absolute paths, content as bytes or text; ``option`` names the option the path came
            from (for error messages).  Files holding a private key must get mode ``0600`` (or
            ``0640`` with a group).
        :raises: ``ConfigError`` naming the option for bad input (nothing is written).
        Must not write anything, run commands or block: it is called in check mode too."""

    def validate(self, applied):
        """Test the server configuration after ALL files of the call are written (``nginx -t``).

        :param applied: list of ``Applied`` (``plan.request``, ``plan.files``).
        :raises: ``DeployError`` with the command output: the core rolls everything back.
        May block on a command."""
        return None

    def reload(self, applied):
        """Make the server load the new files, once per call (also called again after a
        rollback, with the restored files).

        :param applied: list of ``Applied``.
        :returns: True when a reload (or start) happened, False when there was nothing to do.
        :raises: ``DeployError``: the core restores the files and reloads again."""
        return False

    def verify(self, applied):
        """Check the live endpoint serves the new certificate, after the reload.

        :param applied: ONE ``Applied``; ``applied.plan.diff['after']['serial']`` is the new
            serial (hex).
        :returns: the serial (hex) the endpoint serves, or None when there is nothing to check.
        :raises: ``DeployError`` (the core rolls back and reloads again).  Poll with a deadline;
            never a fixed sleep."""
        return None

    # -- helpers for connector authors --------------------------------------------------------

    def run(self, argv, option, what='command'):
        """Run ``argv`` (a list, no shell) through the runner; return its output.  Raise
        ``DeployError`` naming ``option`` with the output when the command fails."""
        if self.runner is None:
            raise DeployError('no command runner was given to the %s target' % self.name, option=option)
        rc, stdout, stderr = self.runner.run_command([str(arg) for arg in argv])
        output = '\n'.join(p.strip() for p in (stderr or '', stdout or '') if p and p.strip())
        if rc != 0:
            raise DeployError('%s `%s` failed (rc=%s): %s' % (what, ' '.join(str(a) for a in argv), rc,
                                                              output[:4000] or '(no output)'),
                              option=option, fix='fix the cause the output names, then run again',
                              details={'command': [str(a) for a in argv], 'rc': rc})
        return output

    @staticmethod
    def read_private_key(request, option='key_path'):
        """The private key at ``request.key_path`` (bytes), for targets that must bundle it
        (combined PEM files, keystores).  ConfigError naming ``option`` when it is missing."""
        if not request.key_path:
            raise ConfigError('this target needs the private key', option=option,
                              fix='set key_path to the private key on the host')
        try:
            with open(request.key_path, 'rb') as handle:
                return handle.read()
        except (IOError, OSError) as exc:
            raise ConfigError('cannot read %s (%s)' % (request.key_path, exc.strerror or exc), option=option,
                              fix='run with become, or correct key_path')


# ---------------------------------------------------------------------------------------------
# notifiers
# ---------------------------------------------------------------------------------------------

class NotifierConnector(Connector):
    """Tells people or systems what happened (webhook, chat, pager, audit log).  Runs on the
    controller.

    Built as ``cls(options)`` with options checked against ``option_spec``.  ``events`` limits
    the event kinds it wants (empty: all of ``issued``, ``renewed``, ``pending``, ``revoked``,
    ``deployed``, ``rolled_back``, ``failed``)."""

    events = ()

    def __init__(self, options):
        self.options = dict(options or {})
        self.warnings = []

    @abc.abstractmethod
    def notify(self, event):
        """Deliver one ``Event`` (``kind``, ``name``, ``issuer``, ``target``, ``details``).

        :returns: anything (ignored).
        :raises: anything: the core turns it into a warning; a notifier never fails a run.
        May block on network I/O with a bounded timeout."""


BASES = {'issuer': IssuerConnector, 'target': TargetConnector, 'notifier': NotifierConnector}

#: the methods the core calls, per kind
CONTRACT = {
    'issuer': ('submit', 'poll', 'revoke', 'find_orders', 'check', 'ca_chain', 'renewal_window'),
    'target': ('files', 'validate', 'reload', 'verify'),
    'notifier': ('notify',),
}


def missing_methods(kind, cls):
    """Names of the methods of the ``kind`` base class that ``cls`` lacks (all public methods
    for a class that does not subclass the base; the abstract ones left open otherwise)."""
    base = BASES[kind]
    if not isinstance(cls, type):
        return list(CONTRACT[kind])
    if not issubclass(cls, base):
        return [name for name in CONTRACT[kind] if not callable(getattr(cls, name, None))]
    return sorted(getattr(cls, '__abstractmethods__', ()) or ())


def check_connector_class(kind, name, cls):
    """None when ``cls`` is a valid ``kind`` connector registered as ``name``, else the message
    naming what is wrong and the fix."""
    base = BASES[kind]
    shown = getattr(cls, '__qualname__', None) or repr(cls)
    if not isinstance(cls, type):
        return ('%s %r is registered as %r, which is not a class; return {name: class} from the '
                'hook' % (kind, name, cls))
    if not issubclass(cls, base):
        missing = missing_methods(kind, cls)
        return ('%s %r: class %s does not subclass sdk.%s%s; subclass it (from '
                'ansible_collections.certforge.pki.plugins.module_utils.sdk import %s)'
                % (kind, name, shown, base.__name__,
                   (' (it lacks %s)' % ', '.join(missing)) if missing else '', base.__name__))
    missing = missing_methods(kind, cls)
    if missing:
        return '%s %r: class %s does not implement %s' % (kind, name, shown, ', '.join(missing))
    if getattr(cls, 'name', None) not in (None, name):
        return '%s %r: class %s says its name is %r' % (kind, name, shown, cls.name)
    return None
