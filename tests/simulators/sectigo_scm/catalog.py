"""The simulated tenant: certificate profiles, custom fields, organizations with departments,
and domains with their validation state.  Ids are fixed so tests can name them.

Fields marked ``_`` are the simulator's own knowledge and never leave the server: the real
``GET /ssl/v1/types`` has no multi-domain, wildcard, approval or renewal flag (a client learns
them from the profile's name and from the errors it gets), so neither does this one.
"""

import copy

RSA_EC = {'RSA': ['2048', '3072', '4096'], 'EC': ['P-256', 'P-384']}

# Profile ids by role, for tests.
DV = 101
DV_MULTI = 102
DV_WILDCARD = 103
OV = 201
OV_MULTI = 202
OV_NO_RENEW = 203
EV = 301
EV_MULTI = 302

#: Simulated seconds from Applied to Issued, by validation type (EV: counted from approval).
DEFAULT_ISSUE_DELAYS = {'DV': 5.0, 'OV': 60.0, 'EV': 10.0}

_VALIDATION_TYPES = {
    'DV': 'Domain Validation (DV)',
    'OV': 'Organization Validation (OV)',
    'EV': 'Extended Validation (EV)',
}


def _profile(pid, name, description, validation, terms, multi=False, wildcard=False, renew=True,
             key_types=None, secondary=False):
    return {
        'id': pid, 'name': name, 'description': description, 'terms': list(terms),
        'keyTypes': copy.deepcopy(key_types or RSA_EC), 'useSecondaryOrgName': secondary,
        '_validation': validation, '_multi': multi, '_wildcard': wildcard, '_renew': renew,
        '_approval': validation == 'EV',
    }


PROFILES = [
    _profile(DV, 'Sectigo DV SSL', 'Domain validated, single domain', 'DV', [365]),
    _profile(DV_MULTI, 'Sectigo DV Multi-Domain SSL', 'Domain validated, up to 100 domains (SAN)',
             'DV', [365], multi=True),
    _profile(DV_WILDCARD, 'Sectigo DV Wildcard SSL', 'Domain validated, one wildcard domain', 'DV',
             [365], wildcard=True),
    _profile(OV, 'Sectigo OV SSL', 'Organization validated, single domain', 'OV', [365, 395]),
    _profile(OV_MULTI, 'Sectigo OV Multi-Domain SSL', 'Organization validated, up to 100 domains (SAN)',
             'OV', [365, 395], multi=True, secondary=True),
    _profile(OV_NO_RENEW, 'Legacy OV SSL (no renewal)', 'Organization validated; renewal disabled',
             'OV', [365], renew=False, key_types={'RSA': ['2048', '3072', '4096']}),
    _profile(EV, 'Sectigo EV SSL', 'Extended validation, single domain; needs approval', 'EV', [365],
             key_types={'RSA': ['2048', '3072', '4096'], 'EC': ['P-256', 'P-384']}),
    _profile(EV_MULTI, 'Sectigo EV Multi-Domain SSL', 'Extended validation, up to 100 domains; needs approval',
             'EV', [365], multi=True),
]

CUSTOM_FIELDS = [
    {'id': 7, 'name': 'cost-center', 'mandatory': True},
    {'id': 8, 'name': 'ticket', 'mandatory': False},
]

# Organization ids.
ORG = 310
DEPT_WEB = 312
DEPT_LEGACY = 313          # SSL REST API not enabled
ORG_DISABLED = 320         # SSL REST API not enabled
ORG_UNVALIDATED = 330      # organization validation missing: DV only


def _org(oid, name, validation, api_enabled, departments=(), cert_types=('SSL', 'SMIME')):
    return {
        'id': oid, 'name': name, 'alias': name.lower().replace(' ', '-'), 'secondaryName': name + ' Ltd',
        'contactEmails': ['pki@' + name.lower().replace(' ', '') + '.example'],
        'address1': '1 Simulation Street', 'address2': '', 'address3': '', 'city': 'Manchester',
        'stateOrProvince': 'Greater Manchester', 'postalCode': 'M1 1AA', 'country': 'GB',
        'validationStatus': validation, 'secondaryValidationStatus': validation,
        'sslCertsApiEnabled': api_enabled, 'clientCertsApiEnabled': api_enabled,
        'clientCertificate': {'allowKeyRecoveryByMasterAdmins': False, 'allowKeyRecoveryByOrgAdmins': False,
                              'allowKeyRecoveryByDepartmentAdmins': False},
        'certTypes': list(cert_types) if api_enabled else [],
        'departments': [dict(d, parentName=name) for d in departments],
    }


def _dept(did, name, api_enabled):
    return {'id': did, 'name': name, 'sslCertsApiEnabled': api_enabled,
            'certTypes': ['SSL'] if api_enabled else []}


ORGANIZATIONS = [
    _org(ORG, 'Example Org', 'Validated', True,
         [_dept(DEPT_WEB, 'Web Team', True), _dept(DEPT_LEGACY, 'Legacy Team', False)]),
    _org(ORG_DISABLED, 'Dormant Org', 'Validated', False),
    _org(ORG_UNVALIDATED, 'Startup Org', 'Not Validated', True),
]

# Domains: (id, name, state, validationStatus, dcv expiry in days from start (None: none), org ids)
DOMAINS = [
    (5101, 'example.com', 'ACTIVE', 'Validated', 300, [ORG, ORG_UNVALIDATED]),
    (5102, 'example.net', 'ACTIVE', 'Validated', 200, [ORG]),
    (5103, 'expired-dcv.example.org', 'ACTIVE', 'Expired', -3, [ORG]),
    (5104, 'unvalidated.example', 'ACTIVE', 'Not validated', None, [ORG]),
    (5105, 'suspended.example', 'SUSPENDED', 'Validated', 100, [ORG]),
    (5106, 'startup.test', 'ACTIVE', 'Validated', 365, [ORG_UNVALIDATED]),
    (5107, 'other-tenant.example', 'ACTIVE', 'Validated', 365, [ORG_DISABLED]),
]


def profiles():
    return copy.deepcopy(PROFILES)


def public_profile(profile):
    return {k: copy.deepcopy(v) for k, v in profile.items() if not k.startswith('_')}


def validation_type(profile):
    return _VALIDATION_TYPES[profile['_validation']]


def organizations():
    return copy.deepcopy(ORGANIZATIONS)


def custom_fields():
    return copy.deepcopy(CUSTOM_FIELDS)
