# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""request_cache.probe: the host side of certificate_request's controller probe.  It answers
only for exactly the options the result was kept for, with the same owner/group ids and every
file unchanged; anything else (or anything unreadable) is None and the module runs."""

import json
import os

import pytest

from ansible_collections.certforge.pki.plugins.module_utils import request_cache as rc

CODE = 'c0de'


@pytest.fixture
def kept(tmp_path, monkeypatch):
    """A directory with a key file and a kept result written for ARGS."""
    monkeypatch.setattr(rc, '_code_digest', lambda: CODE)
    d = tmp_path / 'certs'
    d.mkdir()
    (d / 'www.key').write_text('key bytes')
    os.chmod(d / 'www.key', 0o600)
    args = {'directory': str(d), 'owner': str(os.getuid()), 'requests': [{'privatekey_path': str(d / 'www.key')}]}
    result = {'changed': False, 'results': [{'changed': False, 'current_certificate': {
        'not_before': '2020-01-01T00:00:00Z', 'not_after': '2999-01-01T00:00:00Z', 'days_left': 1, 'expired': True}}]}
    data = {'key': 'k', 'raw': rc.raw_key(args, CODE), 'ids': {'owner:%d' % os.getuid(): os.getuid()},
            'files': {str(d): rc._file_state(str(d)), str(d / 'www.key'): rc._file_state(str(d / 'www.key'))},
            'certs': [None], 'result': result}
    (d / rc.CACHE_NAME).write_text(json.dumps(data))
    return d, args, data


def test_answers_for_the_same_options_with_times_of_now(kept):
    d, args, dummy = kept
    answer = rc.probe(json.loads(json.dumps(args)), CODE)
    cert = answer['results'][0]['current_certificate']
    assert cert['expired'] is False and cert['days_left'] > 300000


@pytest.mark.parametrize('change', ['option', 'code', 'dollar', 'file_bytes', 'file_mode', 'ids', 'garbage',
                                    'no_raw', 'directory', 'kept_writable', 'kept_link', 'kept_foreign'])
def test_anything_else_is_no_answer(kept, change):
    d, args, data = kept
    code = CODE
    if change == 'option':
        args = dict(args, owner='0' if os.getuid() else '1')
    elif change == 'code':
        code = 'other'
    elif change == 'dollar':
        args = dict(args, directory=str(d) + '/$HOME/..')
        data['raw'] = rc.raw_key(args, CODE)
        (d / rc.CACHE_NAME).write_text(json.dumps(data))
    elif change == 'file_bytes':
        (d / 'www.key').write_text('key bytez')
    elif change == 'file_mode':
        os.chmod(d / 'www.key', 0o640)
    elif change == 'ids':
        data['ids'] = dict((k, 4242) for k in data['ids'])
        (d / rc.CACHE_NAME).write_text(json.dumps(data))
    elif change == 'garbage':
        (d / rc.CACHE_NAME).write_text('{"raw": ')
    elif change == 'no_raw':
        del data['raw']
        (d / rc.CACHE_NAME).write_text(json.dumps(data))
    elif change == 'directory':
        args = dict(args, directory=None)
    elif change == 'kept_writable':
        os.chmod(d / rc.CACHE_NAME, 0o620)
    elif change == 'kept_link':
        os.rename(d / rc.CACHE_NAME, d / 'elsewhere.json')
        os.symlink(str(d / 'elsewhere.json'), str(d / rc.CACHE_NAME))
    elif change == 'kept_foreign':
        if os.geteuid() != 0:
            pytest.skip('chown to another user needs root')
        os.chown(d / rc.CACHE_NAME, 65534, -1)
    assert rc.probe(args, code) is None
    # the module's own check trusts such a file no more than the probe
    if change in ('kept_writable', 'kept_foreign'):
        assert rc._read_kept(str(d / rc.CACHE_NAME)) is None
    elif change == 'kept_link':
        with pytest.raises(OSError):
            rc._read_kept(str(d / rc.CACHE_NAME))


def test_remember_keeps_the_options_as_sent(tmp_path, monkeypatch):
    """The module stores the raw key of the options it was sent; without them, no raw key (the
    probe never answers, the module's own check still does)."""
    monkeypatch.setattr(rc, '_code_digest', lambda: CODE)
    d = tmp_path / 'certs'
    d.mkdir()
    params = {'directory': str(d), 'requests': None, 'role_vars': None}
    result = {'changed': True, 'changed_reasons': ['directory_created'], 'directory': {'changed': True}}
    sent = {'directory': str(d)}
    monkeypatch.setattr(rc, 'RAW_ARGS', [sent])
    rc.remember(params, result)
    data = json.loads((d / rc.CACHE_NAME).read_text())
    assert data['raw'] == rc.raw_key(sent, CODE) and data['result']['changed'] is False
    assert rc.probe(sent, CODE) == data['result']
    monkeypatch.setattr(rc, 'RAW_ARGS', [])
    os.unlink(d / rc.CACHE_NAME)
    rc.remember(params, result)
    assert 'raw' not in json.loads((d / rc.CACHE_NAME).read_text())
