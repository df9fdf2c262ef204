# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue or renew many certificates in one call: the certificate role's controller step for
every host of the play at once.  Each request goes through ``core.issue.issue()`` as the
``certificate`` module's does (so exactly once per issuer and name still holds); a request that
fails is reported in its own result and does not stop the others."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.certforge.pki.plugins.module_utils import certificate as single
from ansible_collections.certforge.pki.plugins.module_utils.core import issue as core_issue
from ansible_collections.certforge.pki.plugins.module_utils.core import polling
from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import (
    RENEWAL_OPTIONS, ArgumentSpec, max_length, not_empty)
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import CertforgeError
from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry

REQUEST = dict(
    name=dict(type='str', required=True),
    host=dict(type='str'),
    csr=dict(type='str'),
    current_certificate=dict(type='str'),
    profile=dict(type='str'),
    validity_days=dict(type='int'),
    issuer=dict(type='str'),
    issuer_options=dict(type='dict'),
    renew_before_days=dict(type='int'),
    force=dict(type='bool'),
    wait_timeout=dict(type='int'),
    item=dict(type='raw'),
)

SPEC = ArgumentSpec(
    dict(
        issuer=dict(type='str', required=True),
        issuer_options=dict(type='dict', default={}),
        requests=dict(type='list', elements='dict', required=True, options=REQUEST),
        wait_timeout=dict(type='int', default=60),
        order_store=dict(type='path'),
        max_workers=dict(type='int', default=1),
        notifiers=dict(type='list', elements='dict', default=[]),
        notify_routes=dict(type='list', elements='dict', default=[]),
    ),
    checks={'issuer': [not_empty], 'requests.profile': [max_length(128)]},
)
SPEC.update(RENEWAL_OPTIONS)
SPEC.update(polling.ARGSPEC)

PER_REQUEST = ('issuer', 'issuer_options', 'renew_before_days', 'force', 'wait_timeout')


def _params(top, req):
    """The ``certificate`` module's parameters for one request."""
    p = dict((k, v) for k, v in top.items() if k != 'requests')
    for name in PER_REQUEST:
        if req.get(name) is not None:
            p[name] = req[name]
    for name in ('name', 'csr', 'current_certificate', 'profile', 'validity_days'):
        p[name] = req.get(name)
    return p


class Batch:
    def __init__(self, ctx):
        self.ctx = ctx
        self.registry = Registry(single.BUILTIN_PLUGINS, load_entry_points=getattr(ctx, 'load_entry_points', False))
        for err in self.registry.entry_point_errors:
            ctx.warn('a third-party connector could not be loaded: %s' % err)
        self.connectors = {}
        self.feed = None
        if ctx.params.get('notifiers'):       # no notifier code is imported on a call without notifiers
            from ansible_collections.certforge.pki.plugins.module_utils.notifiers import dispatch
            self.feed = dispatch.feed(ctx, self.registry, ctx.params['notifiers'], ctx.params.get('notify_routes'))

    def connector(self, p):
        key = (p['issuer'], json.dumps(p.get('issuer_options') or {}, sort_keys=True, default=str))
        if key not in self.connectors:
            try:
                self.connectors[key] = single.issuer_connector(self.ctx, self.registry, p['issuer'],
                                                               dict(p.get('issuer_options') or {}))
            except CertforgeError as exc:
                self.connectors[key] = exc
        found = self.connectors[key]
        if isinstance(found, CertforgeError):
            raise found
        return found

    def one(self, req):
        p = _params(self.ctx.params, req)
        out = dict(name=req['name'], host=req.get('host'), item=req.get('item'))
        if not p.get('csr'):
            # in check mode a key that would be made has no CSR yet: the role's plan reports it
            out.update(changed=False, skipped=True, skip_reason='no CSR yet (check mode, the key would be made)')
            return out
        try:
            connector = self.connector(p)
            request = core_issue.build_request(p, p['csr'])
            policy = dict(renew_before_days=p.get('renew_before_days'), renew_at_fraction=p.get('renew_at_fraction'),
                          force=p.get('force'))
            result = core_issue.issue(self.registry, connector, request, current_pem=p.get('current_certificate') or None,
                                      policy=policy, store_path=p.get('order_store'), check_mode=self.ctx.check_mode,
                                      wait_timeout=p['wait_timeout'], schedule=polling.Schedule.from_options(p),
                                      emit=self.registry.emit, recover_window=None)
        except CertforgeError as exc:
            out.update(changed=False, failed=True, **exc.to_result())
            return out
        for warning in result.pop('warnings', []):
            self.ctx.warn('%s: %s' % (req['name'], warning))
        out.update(result)
        return out

    def run(self):
        requests = self.ctx.params['requests']
        workers = max(1, min(int(self.ctx.params.get('max_workers') or 1), len(requests) or 1))
        if workers == 1:
            results = [self.one(req) for req in requests]
        else:
            from concurrent.futures import ThreadPoolExecutor
            for req in requests:       # build (and check) each connector once, before the threads
                try:
                    self.connector(_params(self.ctx.params, req))
                except CertforgeError:
                    pass
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(self.one, requests))
        failed = [r for r in results if r.get('failed')]
        by_host, due = {}, []
        for index, res in enumerate(results):
            host = res.get('host')
            by_host.setdefault(host, []).append(index)
            if (res.get('changed') or res.get('failed') or res.get('status') == 'pending') and host not in due:
                due.append(host)
        out = dict(changed=any(r.get('changed') for r in results), results=results, by_host=by_host, due_hosts=due,
                   deploy=_deploy_lists(results),
                   issued=sum(1 for r in results if r.get('changed') and r.get('certificate')),
                   pending=sum(1 for r in results if r.get('status') == 'pending'), failed_requests=len(failed))
        if self.feed is not None:
            out['notifications'] = self.feed.flush(self.ctx)
        return out


def _deploy_lists(results):
    """Per host, the ``certificates`` of the deploy module for what was issued or renewed, where
    the request's ``meta`` (certificate_request's role_vars) says where it goes; the role's
    deploy task reads this instead of building it in Jinja on every host."""
    out = {}
    for res in results:
        meta = (res.get('item') or [None])[0]
        where = meta.get('deploy') if isinstance(meta, dict) else None
        if not (res.get('changed') and res.get('certificate') and isinstance(where, dict)):
            continue
        entry = {'name': res.get('name'), 'certificate': res['certificate'], 'chain': res.get('chain'),
                 'certificate_path': where.get('certificate_path'), 'chain_path': where.get('chain_path'),
                 'fullchain_path': where.get('fullchain_path'), 'key_path': where.get('key_path')}
        if where.get('verify'):
            entry['verify'] = where['verify']
        out.setdefault(res.get('host'), []).append(entry)
    return out


def execute(ctx):
    return Batch(ctx).run()
