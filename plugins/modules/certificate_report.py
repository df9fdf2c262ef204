#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: certificate_report
short_description: One certificate inventory of a fleet, as an HTML page, JSON and CSV
version_added: 0.2.0
description:
  - Merges what M(certforge.pki.certificate_discovery) found on hosts, what M(certforge.pki.tls_scan) saw on
    endpoints, the order store's issued certificates and a local CA's records into one inventory.
  - A certificate seen in several places is one row, keyed by its SHA-256 fingerprint (by issuer and serial when
    a source gives no fingerprint); every place it was seen is kept in its C(locations) (host and path, endpoint
    and chain position, order-store record, local CA record).
  - Runs on the controller (an action plugin, in-process); the output files are written there.
  - The HTML page is a single file with inline CSS and JavaScript and the data as JSON inside it; it makes no
    network request (a Content-Security-Policy allows only its own inline script and style). It has a
    sortable, filterable table, an expiry timeline, counts by issuer and by days left, and a per-host view.
  - C(days_left), the status and the bucket of each certificate are computed from O(as_of) and C(not_after);
    the status is C(expired), C(critical) (O(critical_days) or fewer days left), C(warning) (O(warn_days) or
    fewer) or C(ok).
  - Files are written atomically (temporary file and rename). The generation time appears once per file (a
    C(meta) tag of the page, C(generated_at) of the JSON, not in the CSV); a file whose content differs only
    there is not rewritten, so a report whose data did not change leaves the task C(changed=false).
  - Revoked and superseded local CA certificates are listed only where another source still finds them.
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written; C(changed) says whether a file would change.
  diff_mode:
    support: full
    details:
      - The CSV and JSON files are diffed as text (without the generation time); for the HTML page the data
        embedded in it is diffed.
  idempotent:
    support: full
    details:
      - With the same inputs and the same day count, files are left alone.
options:
  discovery:
    description:
      - Results registered from M(certforge.pki.certificate_discovery).
      - Either a dict host -> result (the form that keeps host names, see the examples), or a list of results
        that each name their host (C(host) key); a registered loop (C(results)) is read item by item.
      - Results of failed, skipped or unreachable hosts are left out and listed in RV(left_out).
    type: raw
    default: []
  scans:
    description:
      - Results registered from M(certforge.pki.tls_scan) (a list, or one result); each endpoint's chain is added,
        the leaf first.
    type: raw
    default: []
  order_store:
    description:
      - Directory (or C(postgresql://) URL) of the order store on the controller; its issued certificates are
        added. A password inside the URL is never shown.
      - Left out, the order store is not read.
    type: str
  local_ca_path:
    description: Directory of a local CA (M(certforge.pki.local_ca)); its certificate and its records are added.
    type: path
  warn_days:
    description: Certificates with this many days left or fewer have the status C(warning).
    type: int
    default: 30
  critical_days:
    description: Certificates with this many days left or fewer have the status C(critical).
    type: int
    default: 7
  html_path:
    description: The HTML page to write on the controller; its directory must exist.
    type: path
  json_path:
    description: The JSON report to write on the controller (the same rows and counts); its directory must exist.
    type: path
  csv_path:
    description: The CSV report to write on the controller (one line per certificate); its directory must exist.
    type: path
  title:
    description: Title of the page.
    type: str
    default: Certificate report
  as_of:
    description:
      - The moment the report is for (ISO 8601, for example C(2026-12-01T00:00:00Z)); days left and statuses are
        computed from it.
      - Defaults to now.
    type: str
  mode:
    description: Mode of the written files.
    type: raw
    default: '0644'
notes:
  - Without O(html_path), O(json_path) and O(csv_path) nothing is written; the inventory is returned.
seealso:
  - module: certforge.pki.certificate_info
'''

EXAMPLES = r'''
- name: Certificates on every host
  certforge.pki.certificate_discovery:
    paths:
      - /etc/ssl/certs/www.crt
  register: found

- name: One report for the fleet, on the controller
  certforge.pki.certificate_report:
    discovery: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'found'))) }}"
    local_ca_path: /etc/certforge/issuing-ca
    warn_days: 30
    critical_days: 7
    html_path: /var/www/reports/certificates.html
    json_path: /var/www/reports/certificates.json
    csv_path: /var/www/reports/certificates.csv
    title: Certificates of the web fleet
  run_once: true
  register: report

- name: What needs attention
  ansible.builtin.debug:
    msg: "{{ report.expired }} expired, {{ report.critical }} critical, {{ report.warning }} to renew soon"
  run_once: true
'''

RETURN = r'''
certificates:
  description:
    - One entry per certificate, sorted by days left, with C(fingerprint_sha256) (colon-separated hex),
      C(common_name), C(subject), C(sans), C(issuer), C(serial), C(not_before), C(not_after), C(days_left),
      C(status), C(bucket) (C(expired), C(le7), C(le30), C(le90), C(later)), C(self_signed), C(is_ca),
      C(key_match), C(managed), C(hosts), C(sources), C(problems) and C(locations).
    - A location has a C(kind) (C(file), C(endpoint), C(order_store) or C(local_ca)) and what says where
      (C(host) and C(path); C(host), C(port), C(sni) and C(position) in the chain; C(issuer) and C(name);
      C(path), C(serial) and C(state)).
  returned: always
  type: list
  elements: dict
  sample:
    - fingerprint_sha256: "AB:CD:..."
      common_name: www.example.com
      days_left: 12
      status: warning
      bucket: le30
      hosts: [web1]
      locations: [{kind: file, host: web1, path: /etc/ssl/certs/www.crt}]
attention:
  description: The entries of RV(certificates) whose status is C(expired), C(critical) or C(warning).
  returned: always
  type: list
  elements: dict
summary:
  description:
    - C(total); C(by_bucket) and C(by_status) (counts); C(by_issuer) (list of C(issuer), C(count));
      C(by_host) (host -> counts by status and C(total)); C(timeline) (list of C(month), C(count)).
  returned: always
  type: dict
  sample: {total: 3, by_bucket: {expired: 0, le7: 1, le30: 1, le90: 0, later: 1, unknown: 0}}
total:
  description: Number of certificates.
  returned: always
  type: int
  sample: 3
expired:
  description: Number of expired certificates.
  returned: always
  type: int
  sample: 0
critical:
  description: Number of certificates with the status C(critical).
  returned: always
  type: int
  sample: 1
warning:
  description: Number of certificates with the status C(warning).
  returned: always
  type: int
  sample: 1
files:
  description: For each output written (C(html), C(json), C(csv)), its C(path), C(changed) and C(sha256).
  returned: always
  type: dict
  sample: {html: {path: /var/www/reports/certificates.html, changed: true, sha256: "0f1e..."}}
left_out:
  description: Hosts and endpoints left out (failed, unreachable or skipped results, endpoints without a
    certificate), with the reason.
  returned: always
  type: list
  elements: dict
sources:
  description: How many discovery hosts and certificates, endpoints (and failed ones), order-store records and
    local CA records were read.
  returned: always
  type: dict
as_of:
  description: The moment the report is for (ISO 8601, UTC).
  returned: always
  type: str
  sample: '2026-12-01T00:00:00Z'
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.report import SPEC, execute


def main():
    run_module(SPEC, execute)


if __name__ == '__main__':
    main()
