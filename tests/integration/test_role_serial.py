# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate role under `serial`: each batch's one controller-side call asks for that
batch's hosts only (hosts of earlier batches are never asked for again), and the CA signs once
per host."""

import json
import os

import pytest

PLAY = """
- name: Local CA
  hosts: localhost
  gather_facts: false
  tasks:
    - name: CA
      ansible.builtin.include_role:
        name: certforge.pki.local_ca
      vars:
        local_ca_dir: %(ca)s
- name: Certificates, one host at a time
  hosts: fleet
  gather_facts: false
  serial: 1
  tasks:
    - name: Certificates
      ansible.builtin.include_role:
        name: certforge.pki.certificate
      vars:
        certificate_dir: %(certs)s/{{ inventory_hostname }}
        certificate_owner: root
        certificate_group: root
        certificate_issuer_options: {ca_path: %(ca)s/root}
        certificate_list:
          - {name: "{{ inventory_hostname }}", common_name: "{{ inventory_hostname }}.serial.test"}
"""


def test_serial_batches_ask_for_their_own_hosts_only(run_playbook, tmp_path):
    if os.geteuid() != 0:
        pytest.skip('the role sets owner root')
    python = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          '.venv', 'bin', 'python')
    inventory = 'localhost ansible_connection=local ansible_python_interpreter=%s\n[fleet]\n' % python
    inventory += ''.join('h%d ansible_connection=local ansible_python_interpreter=%s\n' % (i, python)
                         for i in (1, 2, 3))
    text = PLAY % {'ca': tmp_path / 'ca', 'certs': tmp_path / 'certs'}
    first = run_playbook(text, inventory=inventory)
    assert first.rc == 0, str(first)
    calls = [t for t in first.tasks if t['task'] == 'certforge.pki.certificate : Issue or renew on the controller']
    asked = sorted(sorted(set(r['host'] for r in t['result']['results'])) for t in calls)
    assert asked == [['h1'], ['h2'], ['h3']], json.dumps(asked)
    records = os.listdir(str(tmp_path / 'ca' / 'root' / 'records'))
    assert len(records) == 3, records
    again = run_playbook(text, inventory=inventory)
    assert again.rc == 0 and all(again.changed(h) == 0 for h in ('h1', 'h2', 'h3')), str(again)
    assert len(os.listdir(str(tmp_path / 'ca' / 'root' / 'records'))) == 3
