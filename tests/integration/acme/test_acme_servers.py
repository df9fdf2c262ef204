# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ACME test servers themselves: started on 127.0.0.1, reachable, configured as documented."""

import json
import ssl
import urllib.error
import urllib.request

import pytest


def _get(url, cafile=None):
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    with urllib.request.urlopen(url, context=context, timeout=5) as response:
        return response.status, response.read()


def test_pebble_directory_roots_and_log(pebble):
    mark = pebble.log_mark()
    status, body = _get(pebble.directory_url, pebble.ca_bundle)
    directory = json.loads(body)
    assert status == 200 and directory['newOrder'].startswith('https://127.0.0.1:%d/' % pebble.port)
    assert directory['meta'].get('externalAccountRequired') is not True
    assert pebble.requests_since(mark) == ['GET /dir']
    assert 'BEGIN CERTIFICATE' in pebble.roots_pem
    assert pebble.cert_status(0x1234)['Status'] == 'NotFound'
    with pytest.raises(urllib.error.URLError, match='CERTIFICATE_VERIFY_FAILED'):
        _get(pebble.directory_url, pebble.roots_path)      # the listener CA is not the ACME root


def test_pebble_eab_directory(pebble_eab):
    directory = json.loads(_get(pebble_eab.directory_url, pebble_eab.ca_bundle)[1])
    assert directory['meta']['externalAccountRequired'] is True
    assert pebble_eab.eab_kid and len(pebble_eab.eab_hmac) >= 43


def test_challtestsrv_txt(acme_dns, a2c_python):
    import subprocess
    acme_dns.set_txt('_acme-challenge.probe.test', 'value-1')
    code = ('import dns.resolver as r; res = r.Resolver(configure=False); res.nameservers = ["127.0.0.1"]; '
            'res.port = %d; print(sorted(x.to_text() for x in res.resolve("_acme-challenge.probe.test", "TXT"))); '
            'print([x.to_text() for x in res.resolve("any.name.test", "A")])' % acme_dns.dns_port)
    done = subprocess.run([a2c_python, '-c', code], capture_output=True, text=True, check=False)
    acme_dns.clear_txt('_acme-challenge.probe.test')
    assert done.returncode == 0, done.stderr
    assert done.stdout.split('\n')[:2] == ["['\"value-1\"']", "['127.0.0.1']"]


def test_a2c_directory_has_ari_and_profiles(a2c):
    directory = a2c.directory()
    assert directory['renewalInfo'].startswith(a2c.base_url)
    assert set(directory['meta']['profiles']) == {'classic', 'shortlived'}


def test_webroot_nginx_serves_http01_port(pebble, webroot_nginx):
    server = webroot_nginx(pebble)
    token = server.webroot + '/.well-known/acme-challenge/tok'
    with open(token, 'w') as handle:
        handle.write('tok.thumb')
    status, body = _get('http://127.0.0.1:%d/.well-known/acme-challenge/tok' % pebble.http01_port)
    assert (status, body) == (200, b'tok.thumb')
