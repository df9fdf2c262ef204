import datetime

import pytest

from ansible_collections.certforge.pki.plugins.module_utils.core import renewal
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import RenewalWindow

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


def facts(days_from=-60, days_to=30, sans=('DNS:a.example',), key='AA', issuer='CN=Test CA'):
    return {
        'not_before': (NOW + datetime.timedelta(days=days_from)).isoformat().replace('+00:00', 'Z'),
        'not_after': (NOW + datetime.timedelta(days=days_to)).isoformat().replace('+00:00', 'Z'),
        'subject_alt_names': list(sans),
        'public_key': {'fingerprint': key},
        'issuer_string': issuer,
        'issuer': {'commonName': 'Test CA'},
    }


def test_missing():
    assert renewal.decide(None, now=NOW) == (True, ['missing'])


def test_missing_and_forced_keeps_order():
    assert renewal.decide(None, policy={'force': True}, now=NOW) == (True, ['missing', 'forced'])


def test_fresh_certificate_not_due():
    assert renewal.decide(facts(days_to=90), now=NOW) == (False, [])


def test_inside_days_window():
    needs, reasons = renewal.decide(facts(days_to=29), policy={'renew_before_days': 30}, now=NOW)
    assert needs and reasons == ['inside_window']


def test_window_boundary_is_due():
    needs, reasons = renewal.decide(facts(days_to=30), policy={'renew_before_days': 30}, now=NOW)
    assert reasons == ['inside_window']
    assert renewal.decide(facts(days_to=31), policy={'renew_before_days': 30}, now=NOW) == (False, [])


def test_expired():
    assert renewal.decide(facts(days_from=-90, days_to=-1), now=NOW) == (True, ['expired'])


def test_fraction_of_lifetime():
    # lifetime 100 days, 70 passed
    f = facts(days_from=-70, days_to=30)
    pol = {'renew_before_days': 0, 'renew_at_fraction': 0.67}
    assert renewal.decide(f, policy=pol, now=NOW) == (True, ['lifetime_fraction'])
    pol['renew_at_fraction'] = 0.75
    assert renewal.decide(f, policy=pol, now=NOW) == (False, [])


def test_san_key_issuer_profile_mismatch():
    f = facts(days_to=200)
    f['profile'] = 'tls_server'
    needs, reasons = renewal.decide(f, expected={
        'subject_alt_names': ['a.example', 'DNS:b.example'],
        'public_key_fingerprint': 'BB',
        'issuer': 'CN=Other CA',
        'profile': 'tls_client'}, now=NOW)
    assert needs
    assert reasons == ['san_changed', 'key_changed', 'issuer_changed', 'profile_changed']


def test_san_comparison_is_canonical():
    f = facts(days_to=200, sans=['DNS:A.Example', 'IP:127.0.0.1'])
    assert renewal.decide(f, expected={'subject_alt_names': ['a.example.', 'ip:127.0.0.1']}, now=NOW) == (False, [])


def test_issuer_dict_match():
    f = facts(days_to=200)
    assert renewal.decide(f, expected={'issuer': {'commonName': 'Test CA'}}, now=NOW) == (False, [])
    assert renewal.decide(f, expected={'issuer': {'commonName': 'X'}}, now=NOW)[1] == ['issuer_changed']


def test_ca_advised_window_overrides_local_policy():
    f = facts(days_to=10)  # inside the local 30-day window ...
    later = RenewalWindow(start=NOW + datetime.timedelta(days=5), end=NOW + datetime.timedelta(days=6))
    assert renewal.decide(f, window=later, now=NOW) == (False, [])  # ... but the CA says later
    earlier = {'start': NOW - datetime.timedelta(days=1), 'end': NOW + datetime.timedelta(days=1)}
    assert renewal.decide(facts(days_to=200), window=earlier, now=NOW) == (True, ['ca_advised'])


@pytest.mark.parametrize('policy,option', [
    ({'renew_before_days': -1}, 'renew_before_days'),
    ({'renew_at_fraction': 1.5}, 'renew_at_fraction'),
    ({'renew_at_fraction': 0}, 'renew_at_fraction'),
])
def test_bad_policy_names_option(policy, option):
    with pytest.raises(ConfigError) as exc:
        renewal.decide(facts(), policy=policy, now=NOW)
    assert exc.value.option == option
    assert 'Fix:' in str(exc.value)
