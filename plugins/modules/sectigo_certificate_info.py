#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: sectigo_certificate_info
short_description: Search and sync the SSL certificates a Sectigo Certificate Manager account holds
version_added: 0.1.0
description:
  - Lists the SSL certificates of a Sectigo Certificate Manager (SCM) tenant, page by page, and reads the
    details of each (status, serial, profile, organization, dates, SANs) with a bounded number of parallel
    requests.
  - Filters that SCM applies itself (O(common_name), O(status), O(profile_ids), O(organization_id), O(serial))
    cut the listing; several statuses or profile ids mean one listing per value. O(expiring_within_days) is
    applied to the details, since SCM's list API has no date filter.
  - With O(state_file) the sync is incremental - a record whose serial and status are the same as at the
    last sync is taken from the state file instead of being read again. The listing is then made per status
    (SCM does not return the status in list entries), plus one count request that catches statuses outside
    the documented vocabulary.
  - With O(download_dir) every issued certificate is written, with its chain, to C(<download_dir>/<sslId>.pem).
  - This module always runs on the controller (an action plugin); it makes read requests only.
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.info_module
  - certforge.pki.sectigo
  - certforge.pki.sectigo.actiongroup_sectigo
options:
  common_name:
    description: Only certificates with this common name (exact match, case-insensitive, done by SCM).
    type: str
  status:
    description:
      - Only certificates in these statuses, for example V(Issued), V(Expired), V(Revoked), V(Applied),
        V(Requested), V(Declined) (case-insensitive).
      - One listing per status.
    type: list
    elements: str
  profile_ids:
    description:
      - Only certificates of these certificate profiles (SCM C(sslTypeId)); see
        M(certforge.pki.sectigo_account_info) for the ids.
      - One listing per profile id.
    type: list
    elements: int
    aliases: [ssl_type_ids]
  organization_id:
    description: Only certificates of this organization or department id.
    type: int
  serial:
    description: Only the certificate with this serial number (hex, with or without colons).
    type: str
  expiring_within_days:
    description:
      - Only certificates whose C(not_after) is within this many days from now. Already expired
        certificates are left out; use O(status=Expired) for those.
    type: int
  page_size:
    description: Records per list request. SCM returns at most 200; a larger value is refused.
    type: int
    default: 200
  max_workers:
    description:
      - Detail (and list-ahead) requests in flight at once, each worker with its own HTTP session.
      - V(1) reads one record after another. At most 64.
    type: int
    default: 8
  state_file:
    description:
      - Path on the controller of a JSON file that keeps the last sync (written atomically, mode 0600).
      - Records whose serial and status did not change since then are not read again.
      - Not written in check mode. A file made for another tenant or login is ignored and replaced.
    type: path
  force_complete_sync:
    description: Read the details of every record even when O(state_file) has them.
    type: bool
    default: false
  download_dir:
    description:
      - Existing directory on the controller where every issued certificate is written as
        C(<sslId>.pem) (leaf, then the intermediate certificates), atomically.
      - A file that already holds the certificate's serial is not downloaded again.
      - In check mode nothing is downloaded; RV(downloaded) lists what would be.
    type: path
  query:
    description:
      - A JMESPath expression applied to RV(certificates); the result is in RV(query_result).
      - Needs the Python library C(jmespath) on the controller.
    type: str
notes:
  - The module reports C(changed) only when it wrote certificates into O(download_dir); updating
    O(state_file) is bookkeeping and does not count as a change.
  - Dates come from SCM as days; O(expiring_within_days) and RV(certificates[].days_left) take a
    certificate to run to 23:59:59 UTC of its last day, as Sectigo's do.
requirements:
  - requests
  - jmespath (for O(query))
seealso:
  - module: certforge.pki.sectigo_account_info
  - module: certforge.pki.sectigo_certificate
'''

EXAMPLES = r'''
- name: Directories for the sync state and the downloads
  ansible.builtin.file:
    path: "{{ item }}"
    state: directory
    mode: '0755'
  loop: [/var/lib/certforge, /srv/certificates]

- name: Sync every certificate of the tenant, incrementally
  certforge.pki.sectigo_certificate_info:
    customer_uri: example
    login: api-bot
    password: "{{ vault_sectigo_password }}"
    state_file: /var/lib/certforge/sectigo-sync.json
  register: scm

- name: Issued certificates that expire within 30 days, credentials from SECTIGO_* variables
  certforge.pki.sectigo_certificate_info:
    status: [Issued]
    expiring_within_days: 30
    query: "[].{name: common_name, id: ssl_id, days: days_left}"
  register: expiring

- name: Download the issued certificates of two profiles
  certforge.pki.sectigo_certificate_info:
    profile_ids: [101, 201]
    status: [Issued]
    download_dir: /srv/certificates
    state_file: /var/lib/certforge/sectigo-sync.json

- name: One certificate by serial
  certforge.pki.sectigo_certificate_info:
    serial: 4F:2A:9C:01:77:3E:5D:10:AA:B2:0C:44:91:6E:D3:08
'''

RETURN = r'''
certificates:
  description: The certificates found, in sslId order.
  returned: success
  type: list
  elements: dict
  contains:
    ssl_id:
      description: SCM id of the certificate record.
      type: int
    common_name:
      description: Common name.
      type: str
    subject_alt_names:
      description: DNS names.
      type: list
      elements: str
    status:
      description: SCM status (Issued, Expired, Revoked, Applied, Requested, Declined ...).
      type: str
    serial:
      description: Serial number, colon-separated hex; null before issuance.
      type: str
    profile:
      description: Certificate profile name.
      type: str
    profile_id:
      description: Certificate profile id.
      type: int
    organization_id:
      description: Organization or department id.
      type: int
    validation_type:
      description: DV, OV or EV as SCM words it.
      type: str
    term:
      description: Validity in days.
      type: int
    key_type:
      description: Key type, for example C(EC - P-256).
      type: str
    requester:
      description: Who requested it.
      type: str
    requested_via:
      description: How it was requested.
      type: str
    external_requester:
      description: External requester e-mail addresses.
      type: str
    comments:
      description: Comments of the order.
      type: str
    requested:
      description: Request date (YYYY-MM-DD).
      type: str
    approved:
      description: Approval date (YYYY-MM-DD).
      type: str
    revoked:
      description: Revocation date (YYYY-MM-DD).
      type: str
    renewed:
      description: Whether the certificate was renewed.
      type: bool
    not_before:
      description: Start of validity (ISO 8601, UTC).
      type: str
    not_after:
      description: End of validity (ISO 8601, UTC).
      type: str
    days_left:
      description: Whole days until RV(certificates[].not_after), negative once expired.
      type: int
    custom_fields:
      description: Custom field values by name.
      type: dict
  sample: [{ssl_id: 10801, common_name: www.example.com, subject_alt_names: [www.example.com], status: Issued,
            serial: '38:06:DC:82:F7:F3:03:2B', profile: Sectigo DV SSL, profile_id: 101, organization_id: 310,
            validation_type: Domain Validation (DV), term: 365, key_type: EC - P-256, requester: api-bot,
            requested_via: REST API, external_requester: null, comments: null, requested: '2026-01-02',
            approved: '2026-01-02', revoked: null, renewed: false, not_before: '2026-01-02T00:00:00Z',
            not_after: '2027-01-02T23:59:59Z', days_left: 300, custom_fields: {cost-center: CC-42}}]
total:
  description: Number of entries in RV(certificates).
  returned: success
  type: int
  sample: 20000
listed:
  description: Records SCM listed for the filters (before O(expiring_within_days)).
  returned: success
  type: int
  sample: 20000
fetched:
  description: Records whose details were read.
  returned: success
  type: int
  sample: 200
skipped_unchanged:
  description: Records taken from O(state_file) because their serial and status had not changed.
  returned: success
  type: int
  sample: 19800
incremental:
  description: Whether the state file was used.
  returned: success
  type: bool
  sample: true
downloaded:
  description: Files written to O(download_dir) (in check mode, the files that would be).
  returned: success
  type: list
  elements: str
  sample: [/srv/certificates/10801.pem]
download_skipped:
  description: Issued certificates whose file in O(download_dir) already held their serial.
  returned: success
  type: int
  sample: 11000
state_file_written:
  description: Whether O(state_file) was written.
  returned: success
  type: bool
  sample: true
calls:
  description: Number of SCM API requests made.
  returned: success
  type: int
  sample: 309
calls_by_kind:
  description: Requests by kind (C(list), C(count), C(details), C(collect), C(other)).
  returned: success
  type: dict
  sample: {list: 108, count: 1, details: 200, collect: 0, other: 0}
query_result:
  description: The result of O(query) on RV(certificates).
  returned: when O(query) is set
  type: raw
  sample: [www.example.com]
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.core.http import HAS_REQUESTS, REQUESTS_IMPORT_ERROR
from ansible_collections.certforge.pki.plugins.module_utils.issuers.sectigo_sync import INFO_SPEC, execute_certificate_info


def main():
    run_module(INFO_SPEC, execute_certificate_info, supports_check_mode=True,
               requires=[('requests', HAS_REQUESTS, REQUESTS_IMPORT_ERROR)])


if __name__ == '__main__':
    main()
