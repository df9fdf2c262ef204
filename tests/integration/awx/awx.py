"""AWX as it really runs a job, for tests: credential types read from docs/awx.md and their
injectors rendered as AWX renders them, and jobs run through ansible-runner with a new private
data directory and a new HOME each.

    types = credential_types()                      # {'Sectigo Certificate Manager': {...}, ...}
    env, files = render_injector(types[name]['injectors'][0], inputs, workdir)
    job = Job(base_dir, playbook_text, inventory_text, envvars, extravars).start()
    job.wait() -> rc;  job.events -> runner job events (dicts);  job.task_results(task_name)
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jinja2
import jinja2.sandbox
import yaml

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / 'docs' / 'awx.md'
_BLOCK = re.compile(r'```yaml\n(.*?)```', re.S)


def credential_types(doc=DOC):
    """{title: {'inputs': dict, 'injectors': [dict, ...]}} for every ``###`` section under
    ``## Credential types``: the YAML block after "Input configuration:" is the input
    configuration, every later block with ``env`` or ``extra_vars`` an injector variant."""
    text = Path(doc).read_text()
    part = text.split('## Credential types', 1)[1].split('\n## ', 1)[0]
    types = {}
    for section in part.split('\n### ')[1:]:
        title, body = section.split('\n', 1)
        blocks = [(m.start(), yaml.safe_load(m.group(1))) for m in _BLOCK.finditer(body)]
        marker = body.index('Input configuration:')
        inputs = [b for pos, b in blocks if pos > marker][0]
        injectors = [b for pos, b in blocks if isinstance(b, dict) and ('env' in b or 'extra_vars' in b)]
        types[title.strip()] = {'inputs': inputs, 'injectors': injectors}
    return types


def render_injector(injector, inputs, workdir):
    """(env, files) as AWX makes them: file templates written to ``workdir`` (0600) and their
    paths offered as ``tower.filename.<name>``; env values rendered with the inputs (fields
    left empty render as '')."""
    env_jinja = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.ChainableUndefined)
    context = dict(inputs)
    filenames = {}
    files = {}
    for name, template in (injector.get('file') or {}).items():
        short = name.split('.', 1)[1]
        path = os.path.join(str(workdir), 'cred-%s' % short)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w') as handle:
            handle.write(env_jinja.from_string(template).render(context))
        filenames[short] = path
        files[short] = path
    context['tower'] = {'filename': filenames}
    env = {k: env_jinja.from_string(v).render(context) for k, v in (injector.get('env') or {}).items()}
    return env, files


def _runner():
    venv = REPO / '.venv' / 'bin' / 'ansible-runner'
    return str(venv) if venv.exists() else shutil.which('ansible-runner')


class Job:
    """One job: ``<base>/<name>/pdd`` (private data dir) and ``<base>/<name>/home``, both new."""

    def __init__(self, base, name, playbook, inventory, envvars=None, extravars=None):
        self.root = Path(base) / name
        self.pdd = self.root / 'pdd'
        self.home = self.root / 'home'
        for sub in ('project', 'inventory', 'env'):
            (self.pdd / sub).mkdir(parents=True)
        self.home.mkdir()
        (self.pdd / 'project' / 'site.yml').write_text(playbook)
        (self.pdd / 'inventory' / 'hosts').write_text(inventory)
        envvars = dict(envvars or {})
        envvars.setdefault('ANSIBLE_COLLECTIONS_PATH', str(REPO / 'build' / 'collections'))
        envvars.setdefault('ANSIBLE_NOCOLOR', '1')
        (self.pdd / 'env' / 'envvars').write_text(yaml.safe_dump(envvars))
        (self.pdd / 'env' / 'extravars').write_text(yaml.safe_dump(dict(extravars or {})))
        os.chmod(str(self.pdd / 'env' / 'envvars'), 0o600)
        self.proc = None

    def start(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(('ANSIBLE_', 'CERTFORGE_', 'SECTIGO_', 'PG', 'PYTHONPATH'))}
        env.update(HOME=str(self.home), PATH='%s:%s' % (Path(sys.executable).parent, env.get('PATH', '')),
                   XDG_CACHE_HOME=str(self.home / '.cache'))
        env['PATH'] = '%s:%s' % (REPO / '.venv' / 'bin', env['PATH'])
        self.proc = subprocess.Popen([_runner(), 'run', str(self.pdd), '-p', 'site.yml', '--ident', 'job'],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, stdin=subprocess.DEVNULL, cwd=str(self.root))
        return self

    def wait(self, timeout=600):
        self.output = self.proc.communicate(timeout=timeout)[0]
        self.rc = self.proc.returncode
        return self.rc

    @property
    def artifacts(self):
        return self.pdd / 'artifacts' / 'job'

    @property
    def events(self):
        out = []
        for path in sorted((self.artifacts / 'job_events').glob('*.json'), key=lambda p: int(p.name.split('-')[0])):
            out.append(json.loads(path.read_text()))
        return out

    def task_results(self, task):
        """Per-host results (event_data.res) of the runner_on_ok/failed events of ``task``."""
        return [e['event_data'].get('res', {}) for e in self.events
                if e.get('event') in ('runner_on_ok', 'runner_on_failed', 'runner_item_on_ok')
                and e.get('event_data', {}).get('task') == task]

    def stats(self):
        for event in reversed(self.events):
            if event.get('event') == 'playbook_on_stats':
                return event['event_data']
        return {}

    def __str__(self):
        return 'ansible-runner job %s rc=%s\n%s' % (self.root.name, getattr(self, 'rc', None),
                                                    (getattr(self, 'output', '') or '')[-5000:])


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %ss waiting for %s' % (timeout, what))
        time.sleep(0.05)
