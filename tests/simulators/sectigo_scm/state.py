"""The simulated SCM tenant: SSL records, their life cycle on a simulated clock, and every
business rule the API applies.  No HTTP here: ``server.py`` maps requests onto these methods,
and errors are raised as ``ApiError(http_status, code, description)``.

Life cycle (reference section 12):

    enroll (DV/OV profile)   -> Applied  --(profile delay)--> Issued --(expires)--> Expired
    enroll (EV profile)      -> Requested --approve--> Applied --(delay)--> Issued
    Requested --decline--> Declined;  Issued --revoke--> Revoked
    Issued --replace--> Applied (same sslId, new serial later)
    Issued --renewById / renew/{renewId}--> new record (old: renewed=true)

Transitions that depend on time happen when a record is looked at (``_refresh``), so a record
nobody reads costs nothing and 20,000 seeded records are cheap.
"""

import base64
import datetime
import random
import re
import secrets
import string
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import catalog
from .pki import normalize_serial, pem, serial_to_colon_hex

DAY = 86400.0
MAX_PAGE = 200
DEFAULT_PAGE = 10
STATUSES = ('Invalid', 'Requested', 'Approved', 'Declined', 'Applied', 'Issued', 'Revoked', 'Expired',
            'Replaced', 'Rejected', 'SAApproved', 'Init')
REVOKE_REASONS = (0, 1, 3, 4, 5)
PENDING_BODIES = {
    0: 'Being processed by Sectigo',
    -183: 'Certificate is not collectable.',
    -1400: 'The request is being processed by Sectigo.',
}
REQUESTED_VIA = {
    'WEB_FORM': 'Enrollment Form', 'CLIENT_ADMIN': 'Client Admin', 'API': 'Web API',
    'DISCOVERY': 'Discovery', 'IMPORTED': 'Imported', 'REST': 'REST API', 'ACME': 'ACME',
}
DATE_FORMATS = {
    'US': '%m/%d/%Y', 'US_HMS': '%m/%d/%Y %H:%M:%S', 'ISO': '%Y-%m-%d', 'ISO_HMS': '%Y-%m-%dT%H:%M:%S',
    'EU': '%d.%m.%Y', 'EU_HMS': '%d.%m.%Y %H:%M:%S', 'UK': '%d/%m/%Y', 'UK_HMS': '%d/%m/%Y %H:%M:%S',
    'JP': '%Y/%m/%d', 'JP_HMS': '%Y/%m/%d %H:%M:%S',
}
FORMATS = ('x509', 'x509CO', 'base64', 'bin', 'x509IO', 'x509IOR', 'pem', 'pemco', 'pemia', 'x509R')
_CSR_CHARS = re.compile(r'^[A-Za-z0-9\-+=/\s]+$')
_EMAIL = re.compile(r'^[^@\s,]+@[^@\s,]+\.[^@\s,]+$')
_DNS = re.compile(r'^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$')


class ApiError(Exception):
    """An SCM error answer: HTTP status plus the ``{code, description}`` body."""

    def __init__(self, status, code, description):
        super().__init__(description)
        self.status, self.code, self.description = status, code, description

    def body(self):
        return {'code': self.code, 'description': self.description}


def bad(code, description):
    return ApiError(400, code, description)


class SimClock:
    """Simulated time in epoch seconds: frozen at its start (plus whatever ``advance`` added),
    or real time plus the advances when ``realtime``."""

    def __init__(self, realtime=False, start=None):
        self.realtime = realtime
        self._start = time.time() if start is None else float(start)
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self):
        with self._lock:
            return (time.time() if self.realtime else self._start) + self._offset

    def advance(self, seconds):
        seconds = float(seconds)
        if seconds < 0:
            raise ValueError('the clock only moves forward')
        with self._lock:
            self._offset += seconds
        return self.now()


def _dt(epoch):
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)


class Record:
    """One SSL certificate record (an order)."""

    __slots__ = ('id', 'renew_id', 'org_id', 'profile', 'term', 'common_name', 'sans', 'csr_pem',
                 'public_key', 'key_algorithm', 'key_size', 'status', 'requested', 'approved',
                 'applied_at', 'issue_delay', 'issued', 'expires', 'declined', 'revoked', 'replaced',
                 'reason_code', 'revoke_reason', 'serial', 'cert', 'comments', 'external_requester',
                 'custom_fields', 'requester', 'requested_via', 'renewed', 'renewed_date', 'origin',
                 'order_number', 'previous_serials', 'renewed_from')

    def __init__(self, **values):
        for name in self.__slots__:
            setattr(self, name, values.get(name))


class Tenant:
    """All state of one simulated SCM customer.  Thread-safe: every public method takes the lock."""

    def __init__(self, pki, clock, login, password, customer_uri, approver_login, approver_password,
                 issue_delays=None, pending_code=0, unknown_id='not_found', revoke_requires_reason_code=False):
        self.pki, self.clock = pki, clock
        self.customer_uri = customer_uri
        self.admins = {login: password, approver_login: approver_password}
        self.lock = threading.RLock()
        self.profiles = {p['id']: p for p in catalog.profiles()}
        self.custom_fields = catalog.custom_fields()
        self.orgs = catalog.organizations()
        self.org_index = {}
        for org in self.orgs:
            self.org_index[org['id']] = (org, None)
            for dept in org['departments']:
                self.org_index[dept['id']] = (dept, org)
        start = clock.now()
        self.domains = []
        for did, name, state, validation, expiry_days, org_ids in catalog.DOMAINS:
            self.domains.append({
                'id': did, 'name': name, 'state': state, 'validationStatus': validation,
                'dcvExpiration': (_dt(start + expiry_days * DAY).strftime('%Y-%m-%d')
                                  if expiry_days is not None else None),
                '_expires': start + expiry_days * DAY if expiry_days is not None else None,
                'orgIds': list(org_ids)})
        self.issue_delays = dict(catalog.DEFAULT_ISSUE_DELAYS)
        self.issue_delays.update(issue_delays or {})
        self.profile_delays = {}
        self.pending_code = pending_code
        self.unknown_id = unknown_id
        self.revoke_requires_reason_code = revoke_requires_reason_code
        self.records = {}
        self.serials = {}
        self.renew_ids = {}
        self.next_id = 10001
        self.next_order_number = 700000001
        self._rng = random.Random()

    # ------------------------------------------------------------------ configuration
    def configure(self, pending_code=None, unknown_id=None, revoke_requires_reason_code=None,
                  issue_delays=None, profile_delays=None):
        with self.lock:
            if pending_code is not None:
                if int(pending_code) not in PENDING_BODIES:
                    raise ValueError('pending_code must be one of %s' % sorted(PENDING_BODIES))
                self.pending_code = int(pending_code)
            if unknown_id is not None:
                if unknown_id not in ('not_found', 'wrong_id'):
                    raise ValueError("unknown_id must be 'not_found' or 'wrong_id'")
                self.unknown_id = unknown_id
            if revoke_requires_reason_code is not None:
                self.revoke_requires_reason_code = bool(revoke_requires_reason_code)
            for key, value in (issue_delays or {}).items():
                self.issue_delays[key] = float(value)
            for key, value in (profile_delays or {}).items():
                self.profile_delays[int(key)] = float(value)

    def delay_for(self, profile):
        if profile['id'] in self.profile_delays:
            return self.profile_delays[profile['id']]
        return self.issue_delays[profile['_validation']]

    # ------------------------------------------------------------------ auth
    def check_login(self, login, password, customer_uri, certificate_cn=None):
        """Password mode (certificate_cn None) or certificate mode (password ignored)."""
        if not login or customer_uri != self.customer_uri or login not in self.admins:
            raise ApiError(401, -16, 'Unknown user')
        if certificate_cn is None:
            if password != self.admins[login]:
                raise ApiError(401, -16, 'Unknown user')
        elif certificate_cn != login:
            raise ApiError(401, -16, 'Unknown user')

    # ------------------------------------------------------------------ helpers
    def _missing(self, sid):
        if self.unknown_id == 'wrong_id':
            return bad(-124, 'Wrong SSL certificate id: %s' % sid)
        return ApiError(404, -5101, 'Certificate not found')

    def _get(self, sid):
        try:
            rec = self.records[int(sid)]
        except (KeyError, TypeError, ValueError):
            raise self._missing(sid) from None
        self._refresh(rec)
        return rec

    def _new_serial(self):
        while True:
            serial = x509.random_serial_number()
            if serial not in self.serials:
                return serial

    def _refresh(self, rec, now=None):
        now = self.clock.now() if now is None else now
        if rec.status == 'Applied' and rec.applied_at is not None and now >= rec.applied_at + rec.issue_delay:
            rec.status = 'Issued'
            rec.issued = rec.applied_at + rec.issue_delay
            rec.expires = rec.issued + rec.term * DAY
            rec.serial = self._new_serial()
            self.serials[rec.serial] = rec.id
            rec.cert = None
        if rec.status == 'Issued' and rec.expires is not None and now >= rec.expires:
            rec.status = 'Expired'

    def _apply(self, rec, now):
        rec.status = 'Applied'
        rec.applied_at = now
        rec.issue_delay = self.delay_for(rec.profile)
        if rec.order_number is None:
            rec.order_number = self.next_order_number
            self.next_order_number += 1

    def _add(self, rec):
        rec.id = self.next_id
        self.next_id += 1
        rec.renew_id = ''.join(self._rng.choice(string.ascii_letters + string.digits) for dummy in range(20))
        self.records[rec.id] = rec
        self.renew_ids[rec.renew_id] = rec.id
        if rec.serial is not None:
            self.serials[rec.serial] = rec.id
        return rec

    # ------------------------------------------------------------------ read-only catalog
    def list_profiles(self, organization_id=None):
        with self.lock:
            profiles = list(self.profiles.values())
            if organization_id not in (None, ''):
                entry = self._org(organization_id)
                org = entry[1] or entry[0]
                if org['validationStatus'] != 'Validated':
                    profiles = [p for p in profiles if p['_validation'] == 'DV']
                if not entry[0].get('sslCertsApiEnabled'):
                    profiles = []
            return [catalog.public_profile(p) for p in profiles]

    def _org(self, oid):
        try:
            return self.org_index[int(oid)]
        except (KeyError, TypeError, ValueError):
            raise bad(-1601, "Field 'orgId' has invalid value: %s" % oid) from None

    def list_orgs(self):
        return [{'id': o['id'], 'name': o['name'],
                 'departments': [{'id': d['id'], 'name': d['name'], 'parentName': d['parentName']}
                                 for d in o['departments']]} for o in self.orgs]

    def org_details(self, oid):
        try:
            entry, parent = self.org_index[int(oid)]
        except (KeyError, TypeError, ValueError):
            raise ApiError(404, -1601, 'Organization not found: %s' % oid) from None
        if parent is None:
            return dict(entry)
        details = {k: v for k, v in parent.items() if k not in ('departments', 'id', 'name', 'alias')}
        details.update(entry)
        details['departments'] = []
        return details

    def list_domains(self, query):
        items = self.domains
        if query.get('name'):
            items = [d for d in items if query['name'].lower() in d['name']]
        if query.get('state'):
            want = query['state'].lower()
            items = [d for d in items if (d['state'] == 'ACTIVE') == (want == 'active')]
        if query.get('orgId'):
            items = [d for d in items if str(query['orgId']) in [str(o) for o in d['orgIds']]]
        return [{'id': d['id'], 'name': d['name']} for d in items]

    def domain_details(self, did):
        for dom in self.domains:
            if str(dom['id']) == str(did):
                out = {k: v for k, v in dom.items() if not k.startswith('_') and k != 'orgIds'}
                out['delegationStatus'] = 'ACTIVE'
                out['validationMethod'] = 'CNAME_CSR_HASH'
                out['delegations'] = [{'orgId': o, 'certTypes': ['SSL'], 'status': 'ACTIVE',
                                       'domainCertificateRequestPrivileges': ['DOMAIN', 'SUBDOMAIN']}
                                      for o in dom['orgIds']]
                return out
        raise ApiError(404, -727, 'Domain does not exist: %s' % did)

    # ------------------------------------------------------------------ CSR
    @staticmethod
    def parse_csr(text):
        if not isinstance(text, str) or not text.strip():
            raise bad(-7, "The 'csr' field is required but missing.")
        text = text.replace('\\n', '\n').strip()
        if len(text) > 32767:
            raise bad(-1601, "Field 'csr' has invalid value: longer than 32767 characters.")
        body = re.sub(r'-----(BEGIN|END) (NEW )?CERTIFICATE REQUEST-----', '', text)
        if not _CSR_CHARS.match(body):
            raise bad(-9, 'CSR is not valid Base-64 data.')
        try:
            der = base64.b64decode(''.join(body.split()), validate=True)
            csr = x509.load_der_x509_csr(der)
        except Exception:  # pylint: disable=broad-except
            raise bad(-10, 'Error decoding CSR.') from None
        if not csr.is_signature_valid:
            raise bad(-138, 'Invalid CSR: the signature does not verify.')
        return csr

    @staticmethod
    def key_facts(public_key):
        if isinstance(public_key, rsa.RSAPublicKey):
            return 'RSA', str(public_key.key_size), public_key.key_size
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            curve = {'secp256r1': 'P-256', 'secp384r1': 'P-384', 'secp521r1': 'P-521'}.get(
                public_key.curve.name, public_key.curve.name)
            return 'EC', curve, public_key.key_size
        return None, None, None

    def _check_key(self, profile, public_key):
        algorithm, param, dummy = self.key_facts(public_key)
        if algorithm is None:
            raise bad(-11, 'Unsupported key algorithm in the CSR.')
        allowed = profile['keyTypes'].get(algorithm)
        if allowed is None:
            if algorithm == 'EC':
                raise bad(-141, "ECC keys are not allowed for profile '%s'." % profile['name'])
            raise bad(-11, "Key algorithm %s is not allowed for profile '%s'." % (algorithm, profile['name']))
        if param not in allowed:
            raise bad(-13, "Key size/curve %s %s is not allowed for profile '%s' (allowed: %s)."
                      % (algorithm, param, profile['name'], ', '.join(allowed)))

    # ------------------------------------------------------------------ domains
    def _check_names(self, profile, org_entry, names):
        org, parent = org_entry
        org_ids = {org['id']} | ({parent['id']} if parent else set())
        wildcards = [n for n in names if n.startswith('*.')]
        if wildcards and not profile['_wildcard']:
            raise bad(-1010, "Wildcard domain '%s' is not allowed for profile '%s'." % (wildcards[0], profile['name']))
        if len(names) > 1 and not profile['_multi']:
            raise bad(-1601, "Field 'subjAltNames' has invalid value: profile '%s' allows a single domain, got %d."
                      % (profile['name'], len(names)))
        if len(names) > 100:
            raise bad(-1601, "Field 'subjAltNames' has invalid value: more than 100 domains.")
        now = self.clock.now()
        not_validated = []
        for name in names:
            if not _DNS.match(name):
                raise bad(-732, "Domain '%s' is invalid." % name)
            bare = name[2:] if name.startswith('*.') else name
            best = None
            for dom in self.domains:
                if (bare == dom['name'] or bare.endswith('.' + dom['name'])) and (
                        best is None or len(dom['name']) > len(best['name'])):
                    best = dom
            if best is None or not org_ids & set(best['orgIds']):
                raise bad(-727, "Domain '%s' does not exist or is not delegated to this organization." % name)
            if best['state'] != 'ACTIVE':
                raise bad(-715, "Domain '%s' is inactive." % best['name'])
            if best['validationStatus'] != 'Validated' or best['_expires'] is None or best['_expires'] <= now:
                not_validated.append(name)
        if not_validated:
            raise bad(-1137, 'Domains are not validated (DCV missing or expired): %s' % ', '.join(not_validated))

    # ------------------------------------------------------------------ enroll
    def enroll(self, body, requester, requested_via='REST'):
        """POST /ssl/v1/enroll -> {sslId, renewId}; raises ApiError on any rule broken."""
        if not isinstance(body, dict):
            raise bad(-7, "The 'orgId' field is required but missing.")
        with self.lock:
            if body.get('orgId') in (None, ''):
                raise bad(-7, "The 'orgId' field is required but missing.")
            org_entry = self._org(body['orgId'])
            org, parent = org_entry
            if not org.get('sslCertsApiEnabled') or (parent is not None and not parent.get('sslCertsApiEnabled')):
                raise bad(-3, "You are not authorized to perform SSL enrollment for organization '%s': "
                              "'Enable Web/REST API' is not set." % org['name'])
            csr = self.parse_csr(body.get('csr'))
            if body.get('certType') in (None, ''):
                raise bad(-7, "The 'certType' field is required but missing.")
            try:
                profile = self.profiles[int(body['certType'])]
            except (KeyError, TypeError, ValueError):
                raise bad(-39, 'Certificate profile id is invalid: %s' % body['certType']) from None
            if body.get('term') in (None, ''):
                raise bad(-7, "The 'term' field is required but missing.")
            try:
                term = int(body['term'])
            except (TypeError, ValueError):
                raise bad(-36, 'The validity period (term) is invalid for this certificate profile.') from None
            if term not in profile['terms']:
                raise bad(-36, 'The validity period (term) is invalid for this certificate profile.')
            validated_org = parent or org
            if profile['_validation'] in ('OV', 'EV') and validated_org['validationStatus'] != 'Validated':
                raise bad(-843, "Profile '%s' cannot be requested due to the organization validation status."
                          % profile['name'])
            self._check_key(profile, csr.public_key())
            common_name = self._csr_cn(csr)
            sans = body.get('subjAltNames')
            if sans is None:
                sans = ''
            if isinstance(sans, list):
                sans = ','.join(str(s) for s in sans)
            if not isinstance(sans, str):
                raise bad(-1601, "Field 'subjAltNames' has invalid value.")
            extra = [s.strip().lower() for s in sans.split(',') if s.strip()]
            if not common_name:
                if not extra:
                    raise bad(-7, "The 'commonName' field is required but missing (no CN in the CSR).")
                common_name = extra[0]
            names = [common_name.lower()]
            for name in extra:
                if name not in names:
                    names.append(name)
            self._check_names(profile, org_entry, names)
            comments = body.get('comments') or ''
            if not isinstance(comments, str) or len(comments) > 1024:
                raise bad(-1601, "Field 'comments' has invalid value: at most 1024 characters.")
            external = body.get('externalRequester') or ''
            if not isinstance(external, str) or len(external) > 512 or (
                    external and not all(_EMAIL.match(e.strip()) for e in external.split(','))):
                raise bad(-1601, "Field 'externalRequester' has invalid value: e-mail addresses, "
                                 "comma-separated, at most 512 characters.")
            fields = self._check_custom_fields(body.get('customFields'))
            dcv_mode = body.get('dcvMode')
            if dcv_mode not in (None, '', 'CNAME', 'EMAIL', 'HTTP', 'HTTPS', 'TXT'):
                raise bad(-1601, "Field 'dcvMode' has invalid value: %s" % dcv_mode)
            if dcv_mode == 'EMAIL' and not body.get('dcvEmail'):
                raise bad(-7, "The 'dcvEmail' field is required but missing.")
            now = self.clock.now()
            algorithm, param, size = self.key_facts(csr.public_key())
            rec = Record(org_id=org['id'], profile=profile, term=term, common_name=common_name,
                         sans=names, csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode('ascii'),
                         public_key=csr.public_key(), key_algorithm=algorithm, key_size=(param, size),
                         status='Requested', requested=now, comments=comments, external_requester=external,
                         custom_fields=fields, requester=requester, requested_via=requested_via,
                         renewed=False, origin='enroll', previous_serials=[])
            if not profile['_approval']:
                rec.approved = now
                self._apply(rec, now)
            self._add(rec)
            return rec

    @staticmethod
    def _csr_cn(csr):
        attrs = csr.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        return str(attrs[0].value).strip() if attrs else ''

    def _check_custom_fields(self, given):
        if given in (None, ''):
            given = []
        if not isinstance(given, list):
            raise bad(-1601, "Field 'customFields' has invalid value: an array of {name, value}.")
        known = {f['name']: f for f in self.custom_fields}
        out = []
        for item in given:
            if not isinstance(item, dict) or 'name' not in item:
                raise bad(-1601, "Field 'customFields' has invalid value: an array of {name, value}.")
            if item['name'] not in known:
                raise bad(-135, "Custom field '%s' cannot be found." % item['name'])
            value = item.get('value')
            if value is not None and (not isinstance(value, str) or len(value) > 256):
                raise bad(-1601, "Custom field '%s' has invalid value." % item['name'])
            out.append({'name': item['name'], 'value': value or ''})
        present = {f['name'] for f in out if f['value']}
        for field in self.custom_fields:
            if field['mandatory'] and field['name'] not in present:
                raise bad(-62, "Mandatory custom field '%s' is missing." % field['name'])
        return out

    # ------------------------------------------------------------------ approval
    def approve(self, sid, approver, message=None):
        with self.lock:
            rec = self._get(sid)
            if rec.status not in ('Requested', 'SAApproved'):
                raise bad(-1112, "Certificate can't be approved, it has state = %s" % rec.status)
            if rec.profile['_validation'] == 'EV' and approver == rec.requester:
                raise bad(-1140, 'The requester cannot approve this certificate: for EV the requester '
                                 'and the approver must be different administrators.')
            if message is not None and (not isinstance(message, str) or len(message) > 512):
                raise bad(-1601, "Field 'message' has invalid value.")
            now = self.clock.now()
            rec.approved = now
            self._apply(rec, now)
            return rec

    def decline(self, sid, message=None):
        with self.lock:
            rec = self._get(sid)
            if rec.status not in ('Requested', 'SAApproved'):
                raise bad(-1112, "Certificate can't be declined, it has state = %s" % rec.status)
            if message is not None and (not isinstance(message, str) or len(message) > 512):
                raise bad(-1601, "Field 'message' has invalid value.")
            rec.status = 'Declined'
            rec.declined = self.clock.now()
            return rec

    def set_status(self, sid, status):
        """Test backdoor: force a status (e.g. Rejected, Invalid)."""
        if status not in STATUSES:
            raise ValueError('unknown status %r' % status)
        with self.lock:
            rec = self._get(sid)
            rec.status = status
            now = self.clock.now()
            if status == 'Applied':
                self._apply(rec, now)
            elif status == 'Revoked':
                rec.revoked = now
            elif status == 'Declined':
                rec.declined = now
            return rec

    # ------------------------------------------------------------------ collect
    def _chain_certs(self, rec):
        if rec.cert is None:
            public_key = rec.public_key or self.pki.seed_key.public_key()
            org = self.org_index[rec.org_id][1] or self.org_index[rec.org_id][0]
            organization = None if rec.profile['_validation'] == 'DV' else org['name']
            country = None if organization is None else org['country']
            # as Sectigo does: valid from 00:00:00 UTC of the issue day to 23:59:59 of the last day
            not_before = _dt(rec.issued).replace(hour=0, minute=0, second=0, microsecond=0)
            not_after = _dt(rec.expires).replace(hour=23, minute=59, second=59, microsecond=0)
            rec.cert = self.pki.sign_leaf(public_key, rec.serial, rec.common_name, rec.sans,
                                          not_before, not_after, organization, country)
        return rec.cert, self.pki.issuing, self.pki.root

    def collect(self, sid, fmt):
        with self.lock:
            rec = self._get(sid)
            fmt = fmt or 'base64'
            if fmt not in FORMATS:
                lowered = {f.lower(): f for f in FORMATS}
                if fmt.lower() not in lowered:
                    raise bad(-126, 'Unknown certificate format: %s' % fmt)
                fmt = lowered[fmt.lower()]
            if rec.status == 'Revoked':
                raise bad(-110, 'Certificate has been revoked and cannot be downloaded.')
            if rec.status in ('Requested', 'Approved', 'SAApproved', 'Applied', 'Init'):
                raise bad(self.pending_code, PENDING_BODIES[self.pending_code])
            if rec.status not in ('Issued', 'Expired'):
                raise bad(-183, 'Certificate is not collectable.')
            leaf, inter, root = self._chain_certs(rec)
            if fmt in ('x509CO', 'pemco'):
                order = [leaf]
            elif fmt in ('x509', 'pem'):
                order = [root, inter, leaf]
            elif fmt in ('x509R', 'pemia'):
                order = [leaf, inter, root]
            elif fmt == 'x509IO':
                order = [root, inter]
            elif fmt == 'x509IOR':
                order = [inter, root]
            elif fmt == 'bin':
                return self.pki.pkcs7([root, inter, leaf], der=True), fmt
            else:  # base64
                return self.pki.pkcs7([root, inter, leaf]), fmt
            return ''.join(pem(c) for c in order).encode('ascii'), fmt

    # ------------------------------------------------------------------ revoke
    def _revoke_fields(self, body):
        body = body if isinstance(body, dict) else {}
        code = body.get('reasonCode')
        if code is None:
            if self.revoke_requires_reason_code:
                raise bad(-7, "The 'reasonCode' field is required but missing.")
            code = 0
        try:
            code = int(code)
        except (TypeError, ValueError):
            raise bad(-1601, "Field 'reasonCode' has invalid value: %s" % code) from None
        if code not in REVOKE_REASONS:
            raise bad(-1601, "Field 'reasonCode' has invalid value: %s (allowed: 0, 1, 3, 4, 5)" % code)
        reason = body.get('reason')
        if reason is not None and (not isinstance(reason, str) or len(reason) > 512):
            raise bad(-1601, "Field 'reason' has invalid value: at most 512 characters.")
        return code, reason or ''

    def _revoke(self, rec, body):
        code, reason = self._revoke_fields(body)
        if rec.status == 'Revoked':
            raise bad(-159, 'Certificate is already revoked.')
        if rec.status != 'Issued':
            raise bad(-102, 'Only issued certificates can be revoked (state = %s).' % rec.status)
        rec.status = 'Revoked'
        rec.revoked = self.clock.now()
        rec.reason_code, rec.revoke_reason = code, reason

    def revoke(self, sid, body):
        with self.lock:
            self._revoke(self._get(sid), body)

    def by_serial(self, serial_text):
        serial = normalize_serial(serial_text)
        if serial is None or serial not in self.serials:
            raise ApiError(404, -5101, 'Certificate not found: serial %s' % serial_text)
        return self._get(self.serials[serial])

    def revoke_serial(self, serial_text, body):
        with self.lock:
            self._revoke(self.by_serial(serial_text), body)

    def revoke_manual(self, body):
        body = body if isinstance(body, dict) else {}
        with self.lock:
            if body.get('certId') is not None:
                rec = self._get(body['certId'])
            elif body.get('serialNumber'):
                rec = self.by_serial(body['serialNumber'])
            else:
                raise bad(-7, "The 'certId' or 'serialNumber' field is required but missing.")
            self._revoke(rec, body)

    # ------------------------------------------------------------------ renew / replace
    def _renew(self, old, body):
        if old.status not in ('Issued', 'Expired'):
            raise bad(-130, 'SSL state is not ISSUED (state = %s).' % old.status)
        if not old.profile['_renew']:
            raise bad(-180, "Profile '%s' does not allow renew." % old.profile['name'])
        body = body if isinstance(body, dict) else {}
        now = self.clock.now()
        rec = Record(org_id=old.org_id, profile=old.profile, term=old.term, common_name=old.common_name,
                     sans=list(old.sans), csr_pem=old.csr_pem, public_key=old.public_key,
                     key_algorithm=old.key_algorithm, key_size=old.key_size, status='Requested', requested=now,
                     comments=old.comments, external_requester=old.external_requester,
                     custom_fields=list(old.custom_fields or []), requester=old.requester,
                     requested_via=old.requested_via, renewed=False, origin='renew', previous_serials=[],
                     renewed_from=old.id)
        if body.get('csr'):
            csr = self.parse_csr(body['csr'])
            self._check_key(old.profile, csr.public_key())
            rec.csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode('ascii')
            rec.public_key = csr.public_key()
            algorithm, param, size = self.key_facts(rec.public_key)
            rec.key_algorithm, rec.key_size = algorithm, (param, size)
        if not old.profile['_approval']:
            rec.approved = now
            self._apply(rec, now)
        self._add(rec)
        old.renewed = True
        old.renewed_date = now
        return rec

    def renew_by_id(self, sid, body):
        with self.lock:
            return self._renew(self._get(sid), body)

    def renew_by_renew_id(self, renew_id, body):
        with self.lock:
            if renew_id not in self.renew_ids:
                raise bad(-123, 'SSL to renew is null (unknown renewId).')
            return self._renew(self._get(self.renew_ids[renew_id]), body)

    def replace(self, sid, body):
        body = body if isinstance(body, dict) else {}
        with self.lock:
            rec = self._get(sid)
            csr = self.parse_csr(body.get('csr'))
            reason = body.get('reason')
            if reason is not None and (not isinstance(reason, str) or len(reason) > 512):
                raise bad(-1601, "Field 'reason' has invalid value: at most 512 characters.")
            if rec.status != 'Issued':
                raise bad(-130, 'SSL state is not ISSUED (state = %s).' % rec.status)
            self._check_key(rec.profile, csr.public_key())
            common_name = body.get('commonName') or self._csr_cn(csr) or rec.common_name
            names = [common_name.lower()]
            sans = body.get('subjectAlternativeNames') or []
            if isinstance(sans, str):
                sans = sans.split(',')
            for name in sans:
                name = str(name).strip().lower()
                if name and name not in names:
                    names.append(name)
            self._check_names(rec.profile, self.org_index[rec.org_id], names)
            now = self.clock.now()
            rec.previous_serials.append(rec.serial)
            rec.common_name, rec.sans = common_name, names
            rec.csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode('ascii')
            rec.public_key = csr.public_key()
            algorithm, param, size = self.key_facts(rec.public_key)
            rec.key_algorithm, rec.key_size = algorithm, (param, size)
            rec.replaced = now
            rec.serial, rec.cert, rec.issued, rec.expires = None, None, None, None
            self._apply(rec, now)

    # ------------------------------------------------------------------ list / details
    def _fmt_date(self, epoch, date_format):
        if epoch is None:
            return None
        pattern = DATE_FORMATS.get((date_format or 'US').upper(), DATE_FORMATS['US'])
        return _dt(epoch).strftime(pattern)

    def details(self, sid, date_format=None):
        with self.lock:
            return self._details(self._get(sid), date_format)

    def _details(self, rec, date_format=None):
        fmt = self._fmt_date
        param, size = rec.key_size or (None, None)
        out = {
            'commonName': rec.common_name, 'sslId': rec.id, 'id': rec.id, 'orgId': rec.org_id,
            'status': rec.status, 'vendor': 'Sectigo Limited',
            'certType': catalog.public_profile(rec.profile),
            'validationType': catalog.validation_type(rec.profile), 'term': rec.term,
            'requester': rec.requester, 'requestedVia': REQUESTED_VIA.get(rec.requested_via, rec.requested_via),
            'externalRequester': rec.external_requester or '', 'comments': rec.comments or '',
            'requested': fmt(rec.requested, date_format), 'renewed': bool(rec.renewed),
            'keyAlgorithm': rec.key_algorithm, 'keySize': size,
            'keyType': '%s - %s' % (rec.key_algorithm, param) if rec.key_algorithm else None,
            'subjectAlternativeNames': list(rec.sans),
            'customFields': [dict(f) for f in rec.custom_fields or []],
            'autoInstallDetails': {'state': 'Not configured'},
            'autoRenewDetails': {'state': 'Not scheduled'}, 'suspendNotifications': False,
        }
        if rec.order_number is not None:
            out['orderNumber'] = rec.order_number
            out['backendCertId'] = str(rec.order_number)
        for name in ('approved', 'issued', 'declined', 'expires', 'replaced', 'revoked'):
            value = getattr(rec, name)
            if value is not None:
                out[name] = fmt(value, date_format)
        if rec.renewed:
            out['renewedDate'] = fmt(rec.renewed_date, date_format)
        if rec.status == 'Revoked':
            out['reasonCode'] = rec.reason_code if rec.reason_code is not None else 0
        if rec.serial is not None:
            out['serialNumber'] = serial_to_colon_hex(rec.serial)
            out['signatureAlg'] = 'SHA256WITHECDSA'
            out['keyUsages'] = ['digitalSignature', 'keyEncipherment'] if rec.key_algorithm == 'RSA' \
                else ['digitalSignature']
            out['extendedKeyUsages'] = ['serverAuth', 'clientAuth']
            org = self.org_index[rec.org_id][1] or self.org_index[rec.org_id][0]
            subject = 'CN=%s' % rec.common_name
            if rec.profile['_validation'] != 'DV':
                subject += ',O=%s,C=%s' % (org['name'], org['country'])
            out['certificateDetails'] = {
                'issuer': 'CN=%s,O=certforge simulators,C=GB' % self.pki.issuing.subject.get_attributes_for_oid(
                    x509.oid.NameOID.COMMON_NAME)[0].value,
                'subject': subject,
                'subjectAltNames': ', '.join('dNSName=%s' % n for n in rec.sans)}
        return {k: v for k, v in out.items() if v is not None}

    def list(self, query):
        """-> (total, items) for GET/HEAD /ssl/v1 with the documented filters and paging."""
        size, position = self._paging(query)
        with self.lock:
            now = self.clock.now()
            matches = []
            for rid in sorted(self.records):
                rec = self.records[rid]
                self._refresh(rec, now)
                if self._matches(rec, query):
                    matches.append(rec)
            page = matches[position:position + size] if size else []
            items = []
            for rec in page:
                item = {'sslId': rec.id, 'commonName': rec.common_name}
                if rec.sans:
                    item['subjectAlternativeNames'] = list(rec.sans)
                if rec.serial is not None:
                    item['serialNumber'] = serial_to_colon_hex(rec.serial)
                items.append(item)
            return len(matches), items

    @staticmethod
    def _paging(query):
        try:
            size = int(query.get('size', DEFAULT_PAGE))
            position = int(query.get('position', 0))
        except ValueError:
            raise bad(-1601, "Fields 'size' and 'position' must be integers.") from None
        if size < 0 or size > MAX_PAGE:
            raise bad(-1601, "Field 'size' has invalid value: %d (0..%d)." % (size, MAX_PAGE))
        if position < -1:
            raise bad(-1601, "Field 'position' has invalid value: %d." % position)
        return size, max(position, 0)

    @staticmethod
    def _matches(rec, query):
        for key, value in query.items():
            if value == '' or key in ('size', 'position', 'dateFormat'):
                continue
            low = value.lower()
            if key == 'commonName':
                if rec.common_name.lower() != low:
                    return False
            elif key == 'subjectAlternativeName':
                if low not in rec.sans:
                    return False
            elif key == 'status':
                if rec.status.lower() != low.replace(' ', ''):
                    return False
            elif key == 'sslTypeId':
                if str(rec.profile['id']) != value:
                    return False
            elif key == 'orgId':
                if str(rec.org_id) != value:
                    return False
            elif key == 'serialNumber':
                if rec.serial is None or rec.serial != normalize_serial(value):
                    return False
            elif key == 'requester':
                if (rec.requester or '').lower() != low:
                    return False
            elif key == 'externalRequester':
                if low not in (rec.external_requester or '').lower():
                    return False
            elif key == 'keyAlgorithm':
                if (rec.key_algorithm or '').lower() != low:
                    return False
            elif key == 'requestedVia':
                if (rec.requested_via or '').lower() != low:
                    return False
        return True

    # ------------------------------------------------------------------ seeding
    def seed(self, count, seed=0, common_name_pattern='host{i}.example.com'):
        """Create ``count`` records quickly (no signing; collect signs lazily). Mix: about 55 %
        Issued, 10 % Expired, 10 % Revoked, 8 % Applied, 7 % Requested (EV), 4 % Declined,
        3 % Rejected, 3 % Invalid; profiles, orgs and expiry dates vary. Returns the new ids."""
        rng = random.Random(seed)
        statuses = (['Issued'] * 55 + ['Expired'] * 10 + ['Revoked'] * 10 + ['Applied'] * 8
                    + ['Requested'] * 7 + ['Declined'] * 4 + ['Rejected'] * 3 + ['Invalid'] * 3)
        orgs = [catalog.ORG, catalog.DEPT_WEB, catalog.ORG_UNVALIDATED]
        key = self.pki.seed_key.public_key()
        ids = []
        with self.lock:
            now = self.clock.now()
            base = len(self.records)
            for index in range(count):
                i = base + index
                status = rng.choice(statuses)
                profile = self.profiles[rng.choice([catalog.DV, catalog.DV_MULTI, catalog.OV, catalog.OV_MULTI,
                                                    catalog.EV])]
                if status == 'Requested':
                    profile = self.profiles[catalog.EV]
                org_id = catalog.ORG_UNVALIDATED if profile['_validation'] == 'DV' and rng.random() < 0.2 \
                    else rng.choice(orgs[:2])
                cn = common_name_pattern.format(i=i)
                sans = [cn]
                if profile['_multi']:
                    sans.append('alt%d.%s' % (i, cn.split('.', 1)[-1]))
                term = profile['terms'][0]
                rec = Record(org_id=org_id, profile=profile, term=term, common_name=cn, sans=sans,
                             public_key=key, key_algorithm='EC', key_size=('P-256', 256), status=status,
                             comments='seeded', external_requester='', custom_fields=[
                                 {'name': 'cost-center', 'value': 'CC-%d' % (i % 50)}],
                             requester='seed-admin', requested_via=rng.choice(['REST', 'WEB_FORM', 'API']),
                             renewed=False, origin='seed', previous_serials=[],
                             order_number=700000000 - i)
                if status in ('Issued', 'Expired', 'Revoked'):
                    if status == 'Expired':
                        expires = now - rng.randint(1, 400) * DAY
                    else:
                        expires = now + rng.randint(1, term) * DAY
                    rec.expires = expires
                    rec.issued = expires - term * DAY
                    rec.requested = rec.approved = rec.applied_at = rec.issued - 600
                    rec.issue_delay = 600
                    rec.serial = (rng.getrandbits(126) | (1 << 125))
                    if status == 'Revoked':
                        rec.revoked = min(now, rec.issued + DAY)
                        rec.reason_code = rng.choice(REVOKE_REASONS)
                else:
                    rec.requested = now - rng.randint(60, 30 * 86400)
                    if status == 'Applied':
                        rec.approved = rec.requested
                        rec.applied_at = now
                        rec.issue_delay = self.delay_for(profile)
                    elif status == 'Declined':
                        rec.declined = rec.requested + 3600
                    rec.order_number = None if status == 'Requested' else rec.order_number
                self._add(rec)
                ids.append(rec.id)
        return ids

    # ------------------------------------------------------------------ inspection (tests)
    def orders(self, common_name=None, include_seeded=False):
        with self.lock:
            out = []
            for rid in sorted(self.records):
                rec = self.records[rid]
                if rec.origin == 'seed' and not include_seeded:
                    continue
                if common_name is not None and rec.common_name.lower() != common_name.lower():
                    continue
                self._refresh(rec)
                item = self._details(rec, 'ISO_HMS')
                item.update({'renewId': rec.renew_id, 'origin': rec.origin, 'renewedFrom': rec.renewed_from,
                             'previousSerials': [serial_to_colon_hex(s) for s in rec.previous_serials or []
                                                 if s is not None]})
                out.append(item)
            return out

    def enroll_count(self, common_name=None):
        with self.lock:
            return sum(1 for rec in self.records.values()
                       if rec.origin == 'enroll' and (common_name is None
                                                      or rec.common_name.lower() == common_name.lower()))

    def renew_id_of(self, sid):
        with self.lock:
            return self._get(sid).renew_id

    def stats(self):
        with self.lock:
            counts = {}
            for rec in self.records.values():
                self._refresh(rec)
                counts[rec.status] = counts.get(rec.status, 0) + 1
            return {'records': len(self.records), 'byStatus': counts, 'now': self.clock.now(),
                    'pendingCode': self.pending_code, 'unknownId': self.unknown_id,
                    'revokeRequiresReasonCode': self.revoke_requires_reason_code,
                    'issueDelays': dict(self.issue_delays)}


def new_secret(length=24):
    return secrets.token_urlsafe(length)
