"""Render the option documentation of every built-in connector from its option spec.

    python tests/utils/connector_docs.py            # print the description lines
    python tests/utils/connector_docs.py --check    # exit 1 when the docs are out of step

The doc fragment ``certforge.pki.connectors`` and the ``certificate`` role's argument specs carry
these lines; ``tests/unit/plugins/test_connector_docs.py`` fails when a spec changes and the
docs do not.
"""

import sys

WIDTH = 100


def _type(entry):
    kind = entry.get('type', 'str')
    if kind == 'list':
        kind = 'list of %s' % entry.get('elements', 'str')
    return kind


def describe(spec):
    parts = []
    for key in sorted(spec):
        entry = spec[key]
        words = [_type(entry)]
        if entry.get('required'):
            words.append('required')
        if entry.get('choices'):
            words.append('one of %s' % ', '.join('V(%s)' % c for c in entry['choices']))
        if entry.get('default') not in (None, [], {}):
            default = entry['default']
            words.append('default V(%s)' % (str(default).lower() if isinstance(default, bool) else default))
        if entry.get('no_log'):
            words.append('secret')
        parts.append('C(%s) (%s)' % (key, ', '.join(words)))
    return '; '.join(parts) if parts else 'none'


def builtin_classes():
    from ansible_collections.certforge.pki.plugins.module_utils.issuers import local_ca, sectigo
    from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import connector as acme
    from ansible_collections.certforge.pki.plugins.module_utils.targets import (
        apache, caddy, dovecot, envoy, files, haproxy, java_keystore, nginx, pkcs12, postfix, traefik)
    return ([local_ca.LocalCAIssuer, acme.AcmeIssuer, sectigo.SectigoIssuer],
            [files.FilesTarget, nginx.NginxTarget, haproxy.HaproxyTarget, apache.ApacheTarget,
             pkcs12.Pkcs12Target, java_keystore.JavaKeystoreTarget, caddy.CaddyTarget,
             postfix.PostfixTarget, dovecot.DovecotTarget, traefik.TraefikTarget, envoy.EnvoyTarget])


def lines():
    issuers, targets = builtin_classes()
    issuer_lines = ['For V(%s) - %s.' % (cls.name, describe(cls.options_argument_spec())) for cls in issuers]
    target_lines = ['For V(%s) - %s.' % (cls.name, describe(cls.options_argument_spec())) for cls in targets]
    return issuer_lines, target_lines


def main():
    issuer_lines, target_lines = lines()
    if '--check' in sys.argv:
        import pathlib
        root = pathlib.Path(__file__).resolve().parents[2]
        texts = [(root / 'plugins/doc_fragments/connectors.py').read_text(),
                 (root / 'roles/certificate/meta/argument_specs.yml').read_text()]
        flat = [' '.join(t.split()) for t in texts]
        missing = [line for line in issuer_lines + target_lines for text in flat if line not in text]
        for line in missing:
            print('out of step: %s' % line)
        return 1 if missing else 0
    print('issuer_options:')
    for line in issuer_lines:
        print('  - ' + line)
    print('target_options:')
    for line in target_lines:
        print('  - ' + line)
    return 0


if __name__ == '__main__':
    sys.exit(main())
