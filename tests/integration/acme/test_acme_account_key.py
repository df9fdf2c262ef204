# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""acme_account makes the account key when asked to, 0600 from its first byte, then registers."""

import os
import stat
import textwrap


def test_account_key_created_then_kept(pebble, run_playbook, tmp_path):
    key = tmp_path / 'keys' / 'account.key'
    key.parent.mkdir()
    play = textwrap.dedent("""
        - name: Account
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Register
              certforge.pki.acme_account:
                acme_directory: "{{ directory }}"
                acme_ca_bundle: "{{ bundle }}"
                account_key_path: "{{ key }}"
                account_key_create: ECDSA-P256
                terms_agreed: true
                order_store: "{{ store }}"
        """)
    extra = {'directory': pebble.directory_url, 'bundle': pebble.ca_bundle, 'key': str(key),
             'store': str(tmp_path / 'orders')}
    check = run_playbook(play, extra_vars=extra, check=True)
    assert check.rc == 0 and check.task('Register')['account_key_created'], str(check)
    assert not key.exists()
    first = run_playbook(play, extra_vars=extra)
    assert first.rc == 0, str(first)
    result = first.task('Register')
    assert result['account_key_created'] and result['status'] == 'created' and result['account_uri']
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    before = key.read_bytes()
    second = run_playbook(play, extra_vars=extra)
    assert second.rc == 0 and second.changed() == 0, str(second)
    assert not second.task('Register')['account_key_created']
    assert key.read_bytes() == before
