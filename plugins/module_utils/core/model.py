# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data crossing the core/connector boundary (public contract).

Plain dataclasses, no behaviour beyond conversion helpers, importable on Python 3.9+
with only the standard library.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

ORDER_PENDING = 'pending'
ORDER_ISSUED = 'issued'
ORDER_FAILED = 'failed'
ORDER_REVOKED = 'revoked'

#: RFC 5280 CRLReason names, in code order (7 is unused).
REVOCATION_REASONS = (
    'unspecified', 'key_compromise', 'ca_compromise', 'affiliation_changed', 'superseded',
    'cessation_of_operation', 'certificate_hold', None, 'remove_from_crl',
    'privilege_withdrawn', 'aa_compromise',
)


def reason_code(name):
    """RFC 5280 reason code of a reason name (``key_compromise`` or ``keyCompromise``)."""
    norm = ''.join(ch for ch in str(name).lower() if ch.isalnum())
    for code, reason in enumerate(REVOCATION_REASONS):
        if reason and reason.replace('_', '') == norm:
            return code
    raise ValueError(name)


@dataclass
class CertificateRequest:
    """What a caller asks an issuer for."""

    name: str                                   # stable identifier (order store key)
    csr_pem: str
    common_name: Optional[str] = None
    subject_alt_names: List[str] = field(default_factory=list)   # 'DNS:x', 'IP:1.2.3.4', ...
    profile: Optional[str] = None
    validity_days: Optional[int] = None
    issuer_options: Dict[str, Any] = field(default_factory=dict)
    # idempotency token: derived from the request identity and the certificate it replaces
    token: Optional[str] = None
    replaces: Optional[str] = None              # PEM of the certificate being renewed
    key_type: Optional[str] = None              # 'RSA-2048', 'EC-P256', 'Ed25519', ... (from the CSR)
    replaces_serial: Optional[str] = None       # hex serial of ``replaces``
    replaces_id: Optional[str] = None           # the CA's id of ``replaces`` when known


@dataclass
class Order:
    """An order at a CA, as far as we know it."""

    issuer: str
    id: Optional[str] = None
    status: str = ORDER_PENDING
    certificate_pem: Optional[str] = None
    chain_pem: List[str] = field(default_factory=list)      # issuer first, root last
    retry_after: Optional[float] = None
    details: Dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None

    @property
    def issued(self):
        return self.status == ORDER_ISSUED and bool(self.certificate_pem)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class Revocation:
    certificate_pem: Optional[str] = None
    serial: Optional[str] = None                # hex, no colons
    reason: str = 'unspecified'
    order_id: Optional[str] = None


@dataclass
class RenewalWindow:
    """A CA-advised window (ARI): renew at some moment between start and end."""

    start: datetime.datetime
    end: datetime.datetime
    explanation_url: Optional[str] = None


@dataclass
class FileSpec:
    """One file a target writes (content: bytes, or text written as ASCII/UTF-8)."""

    path: str
    content: Any
    mode: Optional[str] = None
    owner: Optional[Any] = None
    group: Optional[Any] = None
    label: str = ''                             # 'certificate', 'chain', 'fullchain', 'combined', ...
    # the option the path came from, for error messages (default '<label>_path')
    option: Optional[str] = None
    secret: bool = False                        # holds key material: never diffed, mode 0600 default


@dataclass
class DeployRequest:
    """What a caller asks a target to deploy."""

    name: str
    certificate_pem: str
    chain_pem: List[str] = field(default_factory=list)
    key_path: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)
    certificate_options: Dict[str, Any] = field(default_factory=dict)   # the target's own, checked


@dataclass
class Plan:
    """What a target would change; drives check mode and --diff."""

    request: DeployRequest
    files: List[FileSpec] = field(default_factory=list)         # files whose content or attrs change
    unchanged: List[str] = field(default_factory=list)
    reasons: List[str] = field(default_factory=list)
    diff: Dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self):
        return bool(self.files)


@dataclass
class Applied:
    """The result of apply(): what was written and how to undo it."""

    plan: Plan
    transaction: Any = None                     # core.files.Transaction
    backups: Dict[str, Optional[str]] = field(default_factory=dict)
    details: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Event:
    """Seen by notifiers and audit loggers: issued, renewed, pending, revoked, deployed,
    rolled_back, failed."""

    kind: str
    name: str
    issuer: Optional[str] = None
    target: Optional[str] = None
    details: Dict[str, Any] = field(default_factory=dict)
