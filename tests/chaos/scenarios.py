# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scenarios of the chaos suite.  Each runs real ``ansible-playbook`` controllers against a
CA, injects its fault, reruns once, and returns a ``harness.Tally`` counted at the CA.

``Lab`` holds what a session shares: the ``Chaos`` object (seed, profile, table), ansible's home,
and the CAs (SCM simulator, Pebble behind the counting proxy, a local CA), each started lazily.
"""

import contextlib
import grp
import importlib.util
import os
import pwd
import shutil
import sys
import time
from pathlib import Path


def _harness():
    name = 'certforge_chaos_harness'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, str(Path(__file__).with_name('harness.py')))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


harness = _harness()
servers = harness.servers

DV = 'Sectigo DV SSL'
ORG = 'Example Org'
CUSTOM = {'cost-center': 'CC-42'}
MOMENTS = ('before_submit', 'in_flight', 'after_submit', 'polling')
LOCAL_CA_MOMENTS = ('early', 'signed')      # the local CA signs inside the task: no wire, no polling
IN_FLIGHT_DELAY = 2.0          # seconds the CA holds the submit in the in-flight moment
SLOW_CA_DELAY = 8.0            # sectigo-in-flight: a CA slow enough that the rerun arrives first
CERTS_PER_RUN = 2              # certificates per playbook run in the kill scenarios


class Lab:
    """Session resources, started on first use and stopped by ``close()``."""

    def __init__(self, chaos, root, pg_url=None):
        self.chaos = chaos
        self.root = Path(root)
        self.home = harness.ansible_home(self.root / 'ansible')
        self.pg_url = pg_url
        self._sim = None
        self._acme = None
        self._local_ca = None
        self._closers = []

    # -- resources ---------------------------------------------------------------------------
    @property
    def sim(self):
        if self._sim is None:
            from ansible_collections.certforge.pki.tests.simulators.sectigo_scm import Simulator  # pylint: disable=import-outside-toplevel
            sim = Simulator(realtime=True, workdir=str(self.root / 'scm'))
            self._closers.append(sim.stop)
            sim.start()
            sim.configure(issue_delays={'DV': self.chaos.issue_seconds})
            sim.seed_faults(self.chaos.seed)
            self._sim = sim
        return self._sim

    @property
    def acme(self):
        """(pebble, counting proxy, account key path)."""
        if self._acme is None:
            if not servers.pebble_available():
                raise harness.ChaosError('pebble and pebble-challtestsrv are not installed (make deps)')
            dns = servers.ChallTestSrv(self.root / 'challtestsrv')
            self._closers.append(dns.stop)
            dns.start()
            pebble = servers.Pebble(self.root / 'pebble', dns)
            self._closers.append(pebble.stop)
            pebble.start()
            proxy = harness.AcmeCountingProxy(pebble)
            self._closers.append(proxy.stop)
            proxy.start()
            key, dummy = servers.write_key(self.root / 'acme-account.key')
            self._acme = (pebble, proxy, key)
        return self._acme

    @property
    def local_ca(self):
        if self._local_ca is None:
            path = self.root / 'local-ca'
            play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
                {'name': 'ca', 'certforge.pki.local_ca': {'path': str(path), 'common_name': 'Chaos Root CA'}}]}]
            ctl = self.controller(self.root / 'local-ca-setup', play, {}, label='setup').start()
            result = ctl.wait(120)
            if result['rc'] != 0:
                raise harness.ChaosError('local CA setup failed:\n%s' % ctl.log_tail())
            self._local_ca = path
        return self._local_ca

    def close(self):
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer()
        self._closers = []

    # -- helpers -----------------------------------------------------------------------------
    def controller(self, work, playbook, env, hosts=('localhost',), forks=None, label='run'):
        return harness.Controller(self.home, work, playbook, harness.local_inventory(hosts), env,
                                  forks=forks, label=label)

    def workdir(self, scenario, store, trial):
        path = self.root / scenario / store / ('t%d' % trial)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def store_env(self, store, work):
        if store == 'pg':
            return {'CERTFORGE_ORDER_STORE': self.pg_url}
        return {'CERTFORGE_ORDER_STORE': str(work / 'orders')}

    @staticmethod
    def delete_store(store, env):
        """A fresh container: the file store is gone.  A shared (PostgreSQL) store is not
        inside the container, so it survives."""
        if store == 'file':
            shutil.rmtree(env['CERTFORGE_ORDER_STORE'], ignore_errors=True)

    def names(self, scenario, store, trial, count, domain='example.com'):
        tag = '%s-%s-%d-%d' % (scenario, store, trial, self.chaos.seed % 100000)
        return ['c%d-%s.%s' % (i, tag, domain) for i in range(count)]

    @staticmethod
    def csrs(work, names):
        out = []
        for name in names:
            paths = servers.write_csr(work / 'certs', name.split('.')[0], [name])
            out.append({'name': name, 'csr': paths['csr'], 'crt': paths['cert']})
        return out

    # -- plays -------------------------------------------------------------------------------
    def sectigo_connection(self):
        sim = self.sim
        return {'base_url': sim.base_url, 'customer_uri': sim.customer_uri, 'login': sim.login,
                'password': sim.password, 'ca_bundle': sim.ca_bundle}

    def sectigo_play(self, certs, wait_timeout=None, hosts='localhost', per_host=False):
        args = {'name': '{{ item.name }}', 'csr_path': '{{ item.csr }}',
                'certificate_path': ('{{ item.crt }}.{{ inventory_hostname }}' if per_host else '{{ item.crt }}'),
                'profile': DV, 'organization': ORG, 'custom_fields': CUSTOM,
                'wait_timeout': wait_timeout or self.chaos.issue_seconds + 20,
                'poll_schedule': [0.25], 'poll_jitter': 0}
        return [{'name': 'chaos sectigo', 'hosts': hosts, 'gather_facts': False,
                 'module_defaults': {'group/certforge.pki.sectigo': self.sectigo_connection()},
                 'tasks': [{'name': 'cert', 'certforge.pki.sectigo_certificate': args, 'loop': certs,
                            'loop_control': {'label': '{{ item.name }}'}, 'register': 'cert',
                            'ignore_errors': True}]}]

    def acme_play(self, certs, wait_timeout=20):
        pebble, proxy, key = self.acme
        args = {'name': '{{ item.name }}', 'csr_path': '{{ item.csr }}', 'certificate_path': '{{ item.crt }}',
                'acme_directory': proxy.directory_url, 'acme_ca_bundle': proxy.ca_bundle,
                'account_key_path': key, 'terms_agreed': True, 'http01_listen_port': pebble.http01_port,
                'wait_timeout': wait_timeout}
        return [{'name': 'chaos acme', 'hosts': 'localhost', 'gather_facts': False,
                 'tasks': [{'name': 'cert', 'certforge.pki.acme_certificate': args, 'loop': certs,
                            'loop_control': {'label': '{{ item.name }}'}, 'register': 'cert',
                            'ignore_errors': True}]}]

    def local_ca_play(self, certs):
        args = {'name': '{{ item.name }}', 'csr_path': '{{ item.csr }}', 'certificate_path': '{{ item.crt }}',
                'issuer': 'local_ca', 'issuer_options': {'ca_path': str(self.local_ca)}, 'wait_timeout': 10}
        return [{'name': 'chaos local ca', 'hosts': 'localhost', 'gather_facts': False,
                 'tasks': [{'name': 'cert', 'certforge.pki.certificate': args, 'loop': certs,
                            'loop_control': {'label': '{{ item.name }}'}, 'register': 'cert',
                            'ignore_errors': True}]}]


# ---------------------------------------------------------------------------------------------
# kill moments, per CA
# ---------------------------------------------------------------------------------------------

class SectigoMoments:
    """Waits for a kill moment of the ``k``-th certificate of a run at the SCM simulator.
    ``hold``: seconds the CA holds the enroll in the ``in_flight`` moment."""

    def __init__(self, sim, hold=IN_FLIGHT_DELAY):
        self.sim = sim
        self.hold = hold
        self.arrival_mark = len(sim.arrivals())
        audit = sim.audit()
        self.audit_mark = audit[-1]['seq'] if audit else 0

    def _arrived(self, method, path):
        return len(self.sim.arrivals(method, path, since=self.arrival_mark))

    def _answered_enrolls(self):
        return [e for e in self.sim.audit(method='POST', path='/ssl/v1/enroll', since=self.audit_mark)
                if isinstance(e.get('status'), int)]

    def prepare(self, moment, k):
        if moment == 'in_flight':
            self.sim.fault('delay', '/ssl/v1/enroll', method='POST', times=1, skip=k, delay=self.hold)

    def condition(self, moment, k):
        if moment == 'before_submit':
            return lambda: self._arrived('GET', '/ssl/v1/types') >= k + 1
        if moment == 'in_flight':
            return lambda: self._arrived('POST', '/ssl/v1/enroll') >= k + 1
        if moment == 'after_submit':
            return lambda: len(self._answered_enrolls()) >= k + 1

        def polling():
            answered = self._answered_enrolls()
            if len(answered) < k + 1:
                return False
            since = answered[k]['seq']
            return any(e['route'] == '/ssl/v1/%s' % answered[k].get('ssl_id')
                       for e in self.sim.audit(method='GET', since=since))
        return polling

    def extra(self, moment, rng, chaos):
        if moment == 'in_flight':
            return rng.uniform(0.0, min(self.hold * 0.8, 1.6))
        if moment == 'polling':
            return rng.uniform(0.0, chaos.issue_seconds * 0.8)
        return rng.uniform(0.0, 0.05)

    def settle(self, timeout=15):
        """Wait until every enroll that arrived has been answered (a slow CA finishing)."""
        harness.poll(lambda: self._arrived('POST', '/ssl/v1/enroll') <=
                     len(self.sim.audit(method='POST', path='/ssl/v1/enroll', since=self.audit_mark)),
                     timeout, interval=0.05)

    def cleanup(self):
        self.sim.clear_faults()


class AcmeMoments:
    """Kill moments of the ``k``-th certificate of a run, seen by the counting proxy."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.mark = len(proxy.snapshot())

    def _events(self, kind=None):
        return [e for e in self.proxy.snapshot()[self.mark:] if kind is None or e['kind'] == kind]

    def prepare(self, moment, k):
        del k
        if moment == 'in_flight':
            self.proxy.set_delay('order', IN_FLIGHT_DELAY)

    def condition(self, moment, k):
        if moment == 'before_submit':
            def before():
                # certificate k-1 finalized (or k == 0), then any further request
                done = [e for e in self._events('finalize') if e['status']]
                if len(done) < k:
                    return False
                after = done[k - 1]['n'] if k else 0
                return any(e['n'] > after for e in self._events())
            return before
        if moment == 'in_flight':
            return lambda: len(self._events('order')) >= k + 1
        if moment == 'after_submit':
            return lambda: len([e for e in self._events('order') if e['status']]) >= k + 1
        return lambda: len(self._events('finalize')) >= k + 1

    @staticmethod
    def extra(moment, rng, chaos):
        del chaos
        if moment == 'in_flight':
            return rng.uniform(0.0, IN_FLIGHT_DELAY * 0.8)
        if moment == 'polling':
            return rng.uniform(0.0, 0.3)
        return rng.uniform(0.0, 0.05)

    def settle(self, timeout=15):
        harness.poll(lambda: all(e['status'] for e in self._events()), timeout, interval=0.05)

    def cleanup(self):
        self.proxy.set_delay('order', 0)


class LocalCAMoments:
    """Kill moments at the local CA, which signs at once: a random time after the task's
    worker process appeared, or right after the ``k``-th signature lands in the index."""

    def __init__(self, counter):
        self.counter = counter
        self.mark = counter.count()
        self.controller = None

    def bind(self, controller):
        self.controller = controller

    def prepare(self, moment, k):
        del moment, k

    def condition(self, moment, k):
        if moment == 'early':
            return lambda: bool(harness.descendants(self.controller.pid))
        return lambda: self.counter.count() - self.mark >= k + 1

    @staticmethod
    def extra(moment, rng, chaos):
        del chaos
        if moment == 'early':
            return rng.uniform(0.0, 0.15)
        return rng.uniform(0.0, 0.05)

    def settle(self, timeout=15):
        del timeout

    def cleanup(self):
        pass


# ---------------------------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------------------------

class Runner:
    """Runs one scenario with one store variant and fills a ``Tally``."""

    def __init__(self, lab, scenario, store, strict, deadline):
        self.lab, self.chaos = lab, lab.chaos
        self.scenario, self.store = scenario, store
        self.tally = harness.Tally(scenario, store, strict)
        self.deadline = deadline
        self.started = time.monotonic()

    def trials(self):
        count = self.chaos.runs(self.scenario)
        self.tally.planned = count
        for trial in range(count):
            if trial and time.monotonic() > self.deadline:
                self.tally.notes.append('budget: %d of %d runs' % (trial, count))
                break
            self.tally.runs += 1
            yield trial, self.chaos.rng(self.scenario, self.store, trial)

    def finish(self):
        self.tally.seconds = time.monotonic() - self.started
        return self.tally

    # -- the CA of a scenario ----------------------------------------------------------------
    def ca(self, kind, hold=IN_FLIGHT_DELAY):
        """(play builder, counter, moments factory, wait bound) for ``kind``."""
        lab = self.lab
        if kind == 'sectigo':
            counter = harness.SectigoCounter(lab.sim)
            return (lab.sectigo_play, counter, lambda: SectigoMoments(lab.sim, hold),
                    self.chaos.issue_seconds + hold + 40)
        if kind == 'acme':
            dummy, proxy, dummy2 = lab.acme
            return lab.acme_play, proxy, lambda: AcmeMoments(proxy), 60
        counter = harness.LocalCACounter(lab.local_ca)
        return lab.local_ca_play, counter, lambda: LocalCAMoments(counter), 40

    def count(self, counter, certs, kind):
        for cert in certs:
            if kind == 'acme':
                # the need is a certificate: a newOrder that never reached finalize costs nothing
                # (ACME cannot search for it after a lost answer), so it is shown, not counted
                self.tally.add(cert['name'], counter.certificates(cert['name']),
                               counter.issued(cert['name'], cert['crt']))
                self.tally.bump('acme_extra_new_orders', max(0, counter.orders(cert['name']) - 1))
            else:
                self.tally.add(cert['name'], counter.orders(cert['name']), counter.issued(cert['name'], cert['crt']))

    # -- fault then rerun ----------------------------------------------------------------------
    def kill_then_rerun(self, kind, how, delete_store=False, moments=MOMENTS, hold=IN_FLIGHT_DELAY):
        """Run, kill (``how``: group | tree) at a random moment, or lose an enroll answer
        (``lost``; ``tree_or_lost`` picks one per run), optionally delete the store, rerun
        once, count at the CA."""
        play, counter, make_moments, bound = self.ca(kind, hold)
        for trial, rng in self.trials():
            work = self.lab.workdir(self.scenario, self.store, trial)
            certs = self.lab.csrs(work, self.lab.names(self.scenario, self.store, trial, CERTS_PER_RUN,
                                                       'example.test' if kind == 'acme' else 'example.com'))
            env = self.lab.store_env(self.store, work)
            this_how = how if how != 'tree_or_lost' else rng.choice(('tree', 'lost'))
            moment = rng.choice(moments)
            k = rng.randrange(len(certs))
            moments_at = make_moments()
            ctl = None
            try:
                if this_how == 'lost':
                    self.lab.sim.fault('drop', '/ssl/v1/enroll', method='POST', times=1, skip=k)
                    ctl = self.lab.controller(work, play(certs), env, label='first').start()
                    ctl.wait(bound)
                    self.tally.kills.append('lost')
                else:
                    moments_at.prepare(moment, k)
                    ctl = self.lab.controller(work, play(certs), env, label='first').start()
                    if hasattr(moments_at, 'bind'):
                        moments_at.bind(ctl)
                    hit = harness.poll(lambda: moments_at.condition(moment, k)() or not ctl.running(), bound)
                    if hit and ctl.running():
                        time.sleep(moments_at.extra(moment, rng, self.chaos))   # the random moment itself
                    if ctl.running():
                        ctl.kill(this_how)
                        self.tally.survivors += len(ctl.survivors)
                        self.tally.kills.append('%s@%s' % (this_how, moment))
                    else:
                        self.tally.kills.append('missed@%s' % moment)
                moments_at.cleanup()
                if delete_store:
                    self.lab.delete_store(self.store, env)
                rerun = self.lab.controller(work, play(certs), env, label='rerun').start()
                rerun.wait(bound + 30)
                ctl.stop_survivors(bound)
                moments_at.settle(hold + 15)
                self.count(counter, certs, kind)
            finally:
                moments_at.cleanup()
                if ctl is not None and ctl.survivors:
                    ctl.stop_survivors(0)
        return self.finish()

    def two_controllers(self, kind):
        """Two controllers started together on the same certificates and store, then a rerun."""
        play, counter, make_moments, bound = self.ca(kind)
        for trial, dummy in self.trials():
            work = self.lab.workdir(self.scenario, self.store, trial)
            certs = self.lab.csrs(work, self.lab.names(self.scenario, self.store, trial,
                                                       self.chaos.fanout['two_controllers']))
            env = self.lab.store_env(self.store, work)
            moments_at = make_moments()
            first = self.lab.controller(work, play(certs), env, label='controller-a')
            second = self.lab.controller(work, play(certs), env, label='controller-b')
            first.start()
            second.start()
            first.wait(bound * 3)
            second.wait(bound * 3)
            self.lab.controller(work, play(certs), env, label='rerun').start().wait(bound * 2)
            moments_at.settle()
            self.count(counter, certs, kind)
        return self.finish()

    def role_issue_deploy(self):
        """The certificate role (Sectigo issuer, files target) killed (whole tree) after its
        issue task, before its deploy task; then a rerun."""
        lab = self.lab
        counter = harness.SectigoCounter(lab.sim)
        owner = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        for trial, dummy in self.trials():
            work = lab.workdir(self.scenario, self.store, trial)
            names = lab.names(self.scenario, self.store, trial, CERTS_PER_RUN)
            cert_dir = work / 'role-certs'
            role_vars = {
                'certificate_dir': str(cert_dir), 'certificate_owner': owner, 'certificate_group': group,
                'certificate_issuer': 'sectigo', 'certificate_profile': DV,
                'certificate_issuer_options': dict(lab.sectigo_connection(), organization=ORG, custom_fields=CUSTOM),
                'certificate_target': 'files', 'certificate_wait_timeout': self.chaos.issue_seconds + 20,
                'certificate_list': [{'name': n.split('.')[0], 'common_name': n} for n in names]}
            play = [{'name': 'chaos role', 'hosts': 'localhost', 'gather_facts': False, 'vars': role_vars,
                     'tasks': [{'name': 'Certificates',
                                'ansible.builtin.include_role': {'name': 'certforge.pki.certificate'}}]}]
            env = lab.store_env(self.store, work)
            marker, release = work / 'paused', work / 'release'
            pause = dict(env, CHAOS_PAUSE_AT='Deploy what changed', CHAOS_PAUSE_MARKER=str(marker),
                         CHAOS_PAUSE_RELEASE=str(release), CHAOS_PAUSE_SECONDS='120')
            ctl = lab.controller(work, play, pause, label='first').start()
            hit = harness.poll(lambda: marker.exists() or not ctl.running(), self.chaos.issue_seconds * 4 + 60)
            if hit and ctl.running():
                ctl.kill_tree()
                self.tally.kills.append('tree@between-issue-and-deploy')
            else:
                self.tally.kills.append('missed@between-issue-and-deploy')
            lab.controller(work, play, env, label='rerun').start().wait(self.chaos.issue_seconds * 4 + 90)
            for name in names:
                self.tally.add(name, counter.orders(name),
                               counter.issued(name, cert_dir / (name.split('.')[0] + '.crt')))
        return self.finish()

    def shared_name_hosts(self):
        """Three inventory hosts request the same name with the same CSR in one play."""
        lab = self.lab
        counter = harness.SectigoCounter(lab.sim)
        hosts = ('host-a', 'host-b', 'host-c')
        for trial, dummy in self.trials():
            work = lab.workdir(self.scenario, self.store, trial)
            certs = lab.csrs(work, lab.names(self.scenario, self.store, trial, 2))
            env = lab.store_env(self.store, work)
            play = lab.sectigo_play(certs, hosts='all', per_host=True)
            ctl = lab.controller(work, play, env, hosts=hosts, forks=3, label='first').start()
            ctl.wait(self.chaos.issue_seconds * 6 + 90)
            lab.controller(work, play, env, hosts=hosts, forks=3, label='rerun').start().wait(
                self.chaos.issue_seconds * 6 + 90)
            for cert in certs:
                issued = all(counter.issued(cert['name'], '%s.%s' % (cert['crt'], h)) for h in hosts)
                self.tally.add(cert['name'], counter.orders(cert['name']), issued)
        return self.finish()

    def storm(self):
        """30 % of SCM requests answered 429, 503 or slowly, many hosts with forks=5: every
        certificate issued or pending after the first run, issued after one rerun."""
        lab = self.lab
        sim = lab.sim
        counter = harness.SectigoCounter(sim)
        count = self.chaos.fanout['storm_hosts']
        hosts = tuple('storm-%02d' % i for i in range(count))
        for trial, rng in self.trials():
            work = lab.workdir(self.scenario, self.store, trial)
            certs = lab.csrs(work, lab.names(self.scenario, self.store, trial, count))
            by_host = dict(zip(hosts, certs))
            env = lab.store_env(self.store, work)
            args = {'name': '{{ chaos_cert.name }}', 'csr_path': '{{ chaos_cert.csr }}',
                    'certificate_path': '{{ chaos_cert.crt }}', 'profile': DV, 'organization': ORG,
                    'custom_fields': CUSTOM, 'wait_timeout': self.chaos.issue_seconds + 20,
                    'poll_schedule': [0.25], 'poll_jitter': 0}
            play = [{'name': 'chaos storm', 'hosts': 'all', 'gather_facts': False,
                     'vars': {'chaos_certs': by_host, 'chaos_cert': '{{ chaos_certs[inventory_hostname] }}'},
                     'module_defaults': {'group/certforge.pki.sectigo': lab.sectigo_connection()},
                     'tasks': [{'name': 'cert', 'certforge.pki.sectigo_certificate': args, 'register': 'cert',
                                'ignore_errors': True}]}]
            audit = sim.audit()
            mark = audit[-1]['seq'] if audit else 0
            sim.seed_faults(rng.randrange(2 ** 31))
            # 10 % each: the second and third fault see only what the earlier ones spared
            sim.fault('rate_limit', '*', times=None, probability=0.10, retry_after=1)
            sim.fault('server_error', '*', times=None, probability=0.10 / 0.90)
            sim.fault('delay', '*', times=None, probability=0.10 / 0.80, delay=2.0)
            try:
                first = lab.controller(work, play, env, hosts=hosts, forks=5, label='first').start()
                results = first.wait(self.chaos.issue_seconds * count + 240)
                status = {}
                for task in results['tasks']:
                    if task['task'] == 'cert':
                        status[task['host']] = (task['result'] or {}).get('status')
                for host, cert in by_host.items():
                    self.tally.first_ok[cert['name']] = status.get(host) in ('issued', 'pending', 'valid')
                lab.controller(work, play, env, hosts=hosts, forks=5, label='rerun').start().wait(
                    self.chaos.issue_seconds * count + 240)
            finally:
                self.tally.bump('faults_fired', sum(f['fired'] for f in sim.faults()))
                self.tally.bump('requests', len(sim.audit(since=mark)))
                sim.clear_faults()
            for cert in certs:
                self.tally.add(cert['name'], counter.orders(cert['name']), counter.issued(cert['name'], cert['crt']))
        return self.finish()


#: scenario -> (CA kind, how to run it, strict with the file store)
SCENARIOS = {
    'sectigo-group-kill': ('sectigo', lambda r: r.kill_then_rerun('sectigo', 'group'), True),
    'sectigo-tree-kill': ('sectigo', lambda r: r.kill_then_rerun('sectigo', 'tree'), True),
    'sectigo-answer-lost': ('sectigo', lambda r: r.kill_then_rerun('sectigo', 'lost'), True),
    'sectigo-store-deleted': ('sectigo', lambda r: r.kill_then_rerun('sectigo', 'tree_or_lost', delete_store=True), True),
    'sectigo-two-controllers': ('sectigo', lambda r: r.two_controllers('sectigo'), True),
    'sectigo-in-flight': ('sectigo', lambda r: r.kill_then_rerun('sectigo', 'tree', moments=('in_flight',),
                                                                 hold=SLOW_CA_DELAY), True),
    'role-issue-deploy': ('sectigo', lambda r: r.role_issue_deploy(), True),
    'shared-name-hosts': ('sectigo', lambda r: r.shared_name_hosts(), True),
    'pebble-group-kill': ('acme', lambda r: r.kill_then_rerun('acme', 'group'), True),
    'pebble-tree-kill': ('acme', lambda r: r.kill_then_rerun('acme', 'tree'), True),
    # with the file store deleted, the rerun looks the order up in the account's orders list
    # (RFC 8555 section 7.1.2.1, which Pebble serves): measured, not asserted, because a long
    # run still showed one name with two certificates (docs/chaos.md)
    'pebble-store-deleted': ('acme', lambda r: r.kill_then_rerun('acme', 'tree', delete_store=True), False),
    'local-ca-group-kill': ('local_ca', lambda r: r.kill_then_rerun('local_ca', 'group', moments=LOCAL_CA_MOMENTS), True),
    'local-ca-tree-kill': ('local_ca', lambda r: r.kill_then_rerun('local_ca', 'tree', moments=LOCAL_CA_MOMENTS), True),
    'local-ca-store-deleted': ('local_ca', lambda r: r.kill_then_rerun(
        'local_ca', 'tree', delete_store=True, moments=LOCAL_CA_MOMENTS), True),
    'local-ca-two-controllers': ('local_ca', lambda r: r.two_controllers('local_ca'), True),
    'storm': ('sectigo', lambda r: r.storm(), True),
}


def run(lab, scenario, store, scenarios_left=1):
    """Run ``scenario`` with ``store`` ('file' or 'pg'); returns the Tally (also recorded)."""
    dummy, body, strict_file = SCENARIOS[scenario]
    strict = True if store == 'pg' else strict_file
    runner = Runner(lab, scenario, store, strict, lab.chaos.scenario_deadline(scenarios_left))
    tally = body(runner)
    lab.chaos.record(tally)
    return tally
