"""Canary rollout (roles/canary_rollout, playbooks/canary.yml) over ten inventory hosts, each with
its own real nginx on 127.0.0.1 and its own certificate from the local CA.

A renewal rollout where host04 fails its live verification (its verify endpoint is a second nginx
that keeps serving the old certificate, as a load balancer in front of it would) stops after
host04's batch: hosts 01-03 were renewed, deployed and verified, then rolled back to their old
certificates (files byte-exact, old serial served over TLS); host04 serves its old certificate;
hosts 05-10 were never touched (files byte-exact with the same mtimes, same serial served, nothing
signed for them).  A run again once the cause is fixed renews the whole fleet.  A second test
rolls out to all ten without a failure."""

import grp
import hashlib
import json
import os
import pwd
import subprocess
import sys
import textwrap
from pathlib import Path

from cryptography import x509

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / '.venv' / 'bin' / 'python') if (REPO / '.venv' / 'bin' / 'python').exists() else sys.executable
CANARY_PLAYBOOK = REPO / 'playbooks' / 'canary.yml'
HOSTS = ['host%02d' % n for n in range(1, 11)]
DOMAIN = 'canary.test'
CRASH_TEXT = ('Traceback', 'Task failed: Module failed', 'TypeError:', 'KeyError:', 'AttributeError:', 'ValueError:',
              'unexpected failure')


def _name(host):
    return '%s.%s' % (host, DOMAIN)


class Fleet:
    """Ten hosts, each with its own nginx (one SNI site) and its own certificate directory."""

    def __init__(self, make_nginx, tmp_path, hosts=tuple(HOSTS), targets=False):
        self.hosts = list(hosts)
        self.targets = targets          # certificate_targets (one nginx) instead of certificate_target
        self.tmp = tmp_path
        self.ca = tmp_path / 'ca'
        self.state_file = tmp_path / 'canary-state.json'
        self.env = {'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders'), 'ANSIBLE_FORKS': '10',
                    'ANSIBLE_DISPLAY_TRACEBACK': 'error'}
        self.servers = {host: make_nginx(_name(host)) for host in self.hosts}
        self.verify_port = {host: server.port for host, server in self.servers.items()}

    # -- files on a host -----------------------------------------------------------------------

    def paths(self, host):
        server = self.servers[host]
        site = server.sites[_name(host)]
        return {'certificate': os.path.join(server.cert_dir, 'site.leaf.pem'),
                'chain': os.path.join(server.cert_dir, 'site.chain.pem'),
                'fullchain': site['cert'],
                'key': site['key']}

    def snapshot(self, host):
        """(sha256, mode, mtime in ns) of the certificate, chain, full chain and key of ``host``."""
        out = {}
        for kind, path in self.paths(host).items():
            with open(path, 'rb') as handle:
                info = os.stat(path)
                out[kind] = (hashlib.sha256(handle.read()).hexdigest(), info.st_mode, info.st_mtime_ns)
        return out

    def contents(self, host):
        """(sha256, mode) of each file of ``host``: what a byte-exact rollback restores."""
        return {kind: value[:2] for kind, value in self.snapshot(host).items()}

    def file_serial(self, host):
        with open(self.paths(host)['certificate'], 'rb') as handle:
            return x509.load_pem_x509_certificate(handle.read()).serial_number

    def served_serial(self, host):
        return self.servers[host].served_serial(_name(host))

    def records(self):
        """{serial: record} of everything the local CA (issuing) signed."""
        out = {}
        directory = self.ca / 'issuing' / 'records'
        for entry in sorted(os.listdir(str(directory))):
            if entry.endswith('.json'):
                with open(str(directory / entry)) as handle:
                    out[entry[:-5]] = json.load(handle)
        return out

    # -- inventory and runs --------------------------------------------------------------------

    def inventory(self):
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        hosts = {}
        for host in self.hosts:
            server = self.servers[host]
            paths = self.paths(host)
            hosts[host] = {
                'ansible_connection': 'local',
                'ansible_python_interpreter': PYTHON,
                'certificate_dir': server.cert_dir,
                'certificate_target_options': {'validate_command': server.validate_command,
                                               'reload_command': server.reload_command},
                'certificate_list': [{
                    'name': 'site', 'common_name': _name(host),
                    'privatekey_path': paths['key'], 'certificate_path': paths['certificate'],
                    'chain_path': paths['chain'], 'fullchain_path': paths['fullchain'],
                    'csr_path': os.path.join(server.cert_dir, 'site.csr'),
                    'verify': {'host': '127.0.0.1', 'port': self.verify_port[host], 'server_name': _name(host),
                               'timeout': 3},
                }],
            }
            if self.targets:
                verify = hosts[host]['certificate_list'][0].pop('verify')
                hosts[host]['certificate_targets'] = [{'target': 'nginx', 'verify': verify,
                                                       'target_options': hosts[host].pop('certificate_target_options')}]
        inventory = {'all': {'hosts': hosts, 'vars': {
            'certificate_owner': user, 'certificate_group': group,
            'certificate_issuer': 'local_ca',
            'certificate_issuer_options': {'ca_path': str(self.ca / 'issuing'), 'allowed_domains': [DOMAIN]},
            'certificate_target': 'nginx',
        }}}
        path = self.tmp / 'inventory.json'
        path.write_text(json.dumps(inventory, indent=1))
        return str(path)

    def first_run(self, run_playbook):
        """The local CA on the controller, then every host's first certificate (the plain role)."""
        playbook = textwrap.dedent("""
            - name: Local CA on the controller
              hosts: localhost
              gather_facts: false
              vars:
                ansible_python_interpreter: %s
              tasks:
                - name: CA
                  ansible.builtin.include_role:
                    name: certforge.pki.local_ca
                  vars:
                    local_ca_dir: %s
                    local_ca_intermediate: true
            - name: First certificates
              hosts: all
              gather_facts: false
              tasks:
                - name: Certificates
                  ansible.builtin.include_role:
                    name: certforge.pki.certificate
            """) % (PYTHON, str(self.ca))
        result = run_playbook(playbook, inventory=self.inventory(), env=self.env)
        check_clean(result)
        assert result.rc == 0, result
        for host in self.hosts:
            serial = self.file_serial(host)
            self.servers[host].wait_for_serial(_name(host), serial)
        return result

    def canary(self, run_playbook, batches, **extra):
        extra_vars = dict({'canary_rollout_batches': batches, 'certificate_force': True,
                           'canary_rollout_state_file': str(self.state_file)}, **extra)
        result = run_playbook(str(CANARY_PLAYBOOK), inventory=self.inventory(), extra_vars=extra_vars,
                              env=self.env)
        check_clean(result, expect_failure=result.rc != 0)
        return result

    def state(self):
        return json.loads(self.state_file.read_text())


def check_clean(result, expect_failure=False):
    """No exception text.  Where a task fails on purpose (host04's verify), ansible-core 2.19 with
    ANSIBLE_DISPLAY_TRACEBACK=error prints that failure with its own frames; then no frame may be
    ours, no Python error class may show, and no task result may carry exception text."""
    text = result.stdout + result.stderr
    if not expect_failure:
        for crash in CRASH_TEXT:
            assert crash not in text, result
        return
    frames = [line for line in text.splitlines() if line.strip().startswith('File "')]
    assert not [f for f in frames if 'ansible_collections' in f or '/site-packages/ansible/' not in f], frames
    for crash in CRASH_TEXT[2:]:
        assert crash not in text, result

    def without_exception(value):       # ansible's own frames of a failed task (or loop item)
        if isinstance(value, dict):
            return dict((k, without_exception(v)) for k, v in value.items() if k != 'exception')
        if isinstance(value, list):
            return [without_exception(v) for v in value]
        return value

    for task in result.tasks:
        shown = json.dumps(without_exception(task['result']))
        for crash in CRASH_TEXT:
            assert crash not in shown, (task['host'], task['task'], shown[:3000])


def deployed(result, host):
    """Serials the certificate role's deploy wrote on ``host`` in this run (changed deploys)."""
    out = []
    for task in result.tasks:
        if task['host'] == host and task['action'] == 'certforge.pki.deploy' and task['status'] == 'changed':
            for one in task['result'].get('results') or [task['result']]:     # a loop over certificate_targets
                if one.get('changed'):
                    out.append(one['certificates']['site']['serial'])
    return out


def print_table(capsys, title, rows):
    with capsys.disabled():
        print('\n' + title)
        for row in rows:
            print(row)


def test_canary_stops_at_host04_and_rolls_the_fleet_back(make_nginx, run_playbook, tmp_path, capsys):
    fleet = Fleet(make_nginx, tmp_path)
    fleet.first_run(run_playbook)
    before = {host: fleet.snapshot(host) for host in HOSTS}
    old_serial = {host: fleet.served_serial(host) for host in HOSTS}
    assert old_serial == {host: fleet.file_serial(host) for host in HOSTS}
    records_before = fleet.records()

    # host04's verify endpoint: a second nginx (a load balancer in front of host04, say) that keeps
    # serving host04's current certificate
    stale = make_nginx(_name('host04'))
    site = stale.sites[_name('host04')]
    for kind, dest in (('fullchain', site['cert']), ('key', site['key'])):
        with open(fleet.paths('host04')[kind], 'rb') as src, open(dest, 'wb') as out:
            out.write(src.read())
    subprocess.run(stale.reload_command, check=True, capture_output=True)
    stale.wait_for_serial(_name('host04'), old_serial['host04'])
    fleet.verify_port['host04'] = stale.port

    result = fleet.canary(run_playbook, [1, 2, 1, '100%'])

    assert result.rc != 0, result
    assert 'Canary rollout stopped: host04 failed in batch 3' in result.stdout, result

    # hosts 01-03: renewed, deployed and verified in batches 1 and 2, then rolled back
    new_records = {s: r for s, r in fleet.records().items() if s not in records_before}
    state = fleet.state()
    rows = []
    for host in HOSTS[:3]:
        written = deployed(result, host)
        assert len(written) == 2, (host, written, state['hosts'][host], [   # the new certificate, then the old one again
            (t['task'], t['status'], t['result'].get('msg')) for t in result.tasks if t['host'] == host][-12:])
        assert int(written[0], 16) != old_serial[host] and int(written[1], 16) == old_serial[host]
        assert state['hosts'][host]['status'] == 'changed+rolled_back', state['hosts'][host]
        assert fleet.served_serial(host) == old_serial[host]
        assert fleet.file_serial(host) == old_serial[host]
        assert fleet.contents(host) == {k: v[:2] for k, v in before[host].items()}, host
        rows.append('CANARY %s changed+rolled_back new=%s serial=%X' % (host, written[0], fleet.served_serial(host)))

    # host04: its renewal was deployed, failed the live verification and was rolled back by the target
    assert state['hosts']['host04']['status'] == 'failed' and state['hosts']['host04']['failed'], state
    assert 'verify' in state['hosts']['host04']['msg'], state['hosts']['host04']
    assert deployed(result, 'host04') == []
    assert fleet.served_serial('host04') == old_serial['host04']
    assert fleet.contents('host04') == {k: v[:2] for k, v in before['host04'].items()}
    rows.append('CANARY host04 failed(verify)+restored serial=%X' % fleet.served_serial('host04'))

    # hosts 05-10: untouched
    for host in HOSTS[4:]:
        assert fleet.snapshot(host) == before[host], host        # sha256 and mtime of every file
        assert fleet.served_serial(host) == old_serial[host]
        assert state['hosts'][host]['status'] == 'untouched', state['hosts'][host]
        assert deployed(result, host) == []
        rows.append('CANARY %s untouched serial=%X' % (host, fleet.served_serial(host)))

    # the CA signed once for each of hosts 01-04 and for no other host
    signed_for = sorted(name for record in new_records.values() for name in record.get('subject_alt_names', []))
    assert len(new_records) == 4, new_records
    assert signed_for == ['DNS:' + _name(h) for h in HOSTS[:4]], signed_for
    for line in ('CANARY host01 batch=1 changed+rolled_back', 'CANARY host04 batch=3 failed',
                 'CANARY host05 batch=4 untouched'):
        assert line in result.stdout, result
    rows.append('CANARY ca_signed=%d (hosts 01-04 only)' % len(new_records))
    print_table(capsys, 'canary rollout stopped at host04:', rows)

    # the cause fixed, the operator runs again: the whole fleet renews, each host once more
    fleet.verify_port['host04'] = fleet.servers['host04'].port
    records_mid = fleet.records()
    again = fleet.canary(run_playbook, ['100%'])
    assert again.rc == 0, again
    for host in HOSTS:
        serial = fleet.file_serial(host)
        assert serial != old_serial[host]
        assert fleet.served_serial(host) == serial
    # at most one signature per host in the run again (a certificate issued in the stopped run and
    # never kept may be used again), and every served certificate is one the CA recorded
    records = fleet.records()
    again_signed = sorted(r['subject_alt_names'][0] for s, r in records.items() if s not in records_mid)
    assert len(again_signed) == len(set(again_signed)), again_signed
    assert set(again_signed) >= {'DNS:' + _name(h) for h in HOSTS[4:]}, again_signed
    recorded = {int(s, 16) for s in records}
    assert all(fleet.served_serial(h) in recorded for h in HOSTS)
    print_table(capsys, 'canary rollout run again after the fix:',
                ['CANARY %s %s serial=%X' % (h, fleet.state()['hosts'][h]['status'], fleet.served_serial(h))
                 for h in HOSTS])


def test_canary_rolls_out_to_the_whole_fleet(make_nginx, run_playbook, tmp_path, capsys):
    fleet = Fleet(make_nginx, tmp_path)
    fleet.first_run(run_playbook)
    old_serial = {host: fleet.served_serial(host) for host in HOSTS}
    records_before = fleet.records()

    result = fleet.canary(run_playbook, [1, 2, '50%', '100%'], canary_rollout_pause_seconds=1)
    assert result.rc == 0, result
    state = fleet.state()
    assert state['batches'] == [HOSTS[:1], HOSTS[1:3], HOSTS[3:8], HOSTS[8:]], state['batches']
    assert not state['stopped']
    rows = []
    for host in HOSTS:
        serial = fleet.file_serial(host)
        assert serial != old_serial[host]
        assert fleet.served_serial(host) == serial
        assert state['hosts'][host]['status'] == 'changed+verified', state['hosts'][host]
        assert {k: int(v, 16) for k, v in state['hosts'][host]['served'].items()} == {'site': serial}, state['hosts'][host]
        rows.append('CANARY %s changed+verified serial=%X' % (host, serial))
    new_records = [s for s in fleet.records() if s not in records_before]
    assert len(new_records) == len(HOSTS), new_records
    print_table(capsys, 'canary rollout to the whole fleet:', rows)


def test_canary_halt_stops_without_rolling_back(make_nginx, run_playbook, tmp_path, capsys):
    """canary_rollout_on_failure: halt - host02 fails its live verification in batch 2: no later
    batch starts, host01 keeps its new certificate, host02 serves its old one, host03 untouched."""
    fleet = Fleet(make_nginx, tmp_path, hosts=HOSTS[:3])
    fleet.first_run(run_playbook)
    before = {host: fleet.snapshot(host) for host in fleet.hosts}
    old_serial = {host: fleet.served_serial(host) for host in fleet.hosts}
    records_before = fleet.records()
    stale = make_nginx(_name('host02'))          # a verify endpoint that never serves the new certificate
    fleet.verify_port['host02'] = stale.port

    result = fleet.canary(run_playbook, [1], canary_rollout_on_failure='halt')
    assert result.rc != 0, result
    assert 'Canary rollout stopped: host02 failed in batch 2' in result.stdout, result
    assert 'canary_rollout_on_failure: halt' in result.stdout, result
    state = fleet.state()
    assert state['stopped'] and state['on_failure'] == 'halt'
    assert [state['hosts'][h]['status'] for h in fleet.hosts] == ['changed+verified', 'failed', 'untouched'], state
    new_serial = fleet.file_serial('host01')
    assert new_serial != old_serial['host01'] and fleet.served_serial('host01') == new_serial
    assert fleet.served_serial('host02') == old_serial['host02']
    assert fleet.contents('host02') == {k: v[:2] for k, v in before['host02'].items()}
    assert fleet.snapshot('host03') == before['host03'] and fleet.served_serial('host03') == old_serial['host03']
    new_records = [r for s, r in fleet.records().items() if s not in records_before]
    assert sorted(r['subject_alt_names'][0] for r in new_records) == ['DNS:' + _name(h) for h in HOSTS[:2]]
    print_table(capsys, 'canary rollout halted at host02:',
                ['CANARY %s %s serial=%X' % (h, state['hosts'][h]['status'], fleet.served_serial(h))
                 for h in fleet.hosts])


def test_canary_refuses_bad_rollout_variables_before_writing(make_nginx, run_playbook, tmp_path):
    fleet = Fleet(make_nginx, tmp_path, hosts=HOSTS[:2])
    before = {host: sorted(os.listdir(fleet.servers[host].cert_dir)) for host in fleet.hosts}
    for bad, option in (({'canary_rollout_batches': ['0%', 'x']}, 'canary_rollout_batches'),
                        ({'canary_rollout_batches': [1], 'canary_rollout_pause_seconds': -5},
                         'canary_rollout_pause_seconds'),
                        ({'canary_rollout_batches': [1], 'certificate_rotate_key': True}, 'certificate_rotate_key')):
        extra = dict({'canary_rollout_state_file': str(fleet.state_file)}, **bad)
        result = run_playbook(str(CANARY_PLAYBOOK), inventory=fleet.inventory(), extra_vars=extra, env=fleet.env)
        assert result.rc != 0, result
        check_clean(result, expect_failure=True)
        failed = [t for t in result.tasks if t['status'] == 'failed']
        assert failed and all(option in t['result']['msg'] for t in failed), (option, failed)
        assert {host: sorted(os.listdir(fleet.servers[host].cert_dir)) for host in fleet.hosts} == before
        assert not fleet.state_file.exists() and not (tmp_path / 'orders').exists()


def test_canary_rolls_back_through_certificate_targets(make_nginx, run_playbook, tmp_path, capsys):
    """The same stop and rollback where the hosts deploy through certificate_targets (the verify is
    the target's): host01 is renewed in batch 1, host02 fails its verify in batch 2, host01 gets
    its old certificate back byte-exact."""
    fleet = Fleet(make_nginx, tmp_path, hosts=HOSTS[:2], targets=True)
    fleet.first_run(run_playbook)
    before = {host: fleet.snapshot(host) for host in fleet.hosts}
    old_serial = {host: fleet.served_serial(host) for host in fleet.hosts}
    fleet.verify_port['host02'] = make_nginx(_name('host02')).port

    result = fleet.canary(run_playbook, [1])
    assert result.rc != 0, result
    state = fleet.state()
    assert [state['hosts'][h]['status'] for h in fleet.hosts] == ['changed+rolled_back', 'failed'], state
    written = deployed(result, 'host01')
    assert len(written) == 2 and int(written[0], 16) != old_serial['host01'], written
    assert int(written[1], 16) == old_serial['host01']
    for host in fleet.hosts:
        assert fleet.served_serial(host) == old_serial[host]
        assert fleet.contents(host) == {k: v[:2] for k, v in before[host].items()}, host
    print_table(capsys, 'canary rollout through certificate_targets:',
                ['CANARY %s %s serial=%X' % (h, state['hosts'][h]['status'], fleet.served_serial(h))
                 for h in fleet.hosts])
