# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``email`` notifier: SMTP with STARTTLS (required unless ``starttls: never``), the
server's certificate checked against the system trust or ``ca_path``; optional login.  One
mail per event, or one mail listing every certificate of a digest; plain text, plus an HTML
alternative unless ``html: false``.

Retries (with backoff and jitter) on connection failures and 4xx SMTP answers; a 5xx answer, a
certificate the trust refuses or a server without STARTTLS fail at once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import html
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.notifiers import common

COLUMNS = (('severity', 'Severity'), ('name', 'Certificate'), ('days_left', 'Days left'), ('not_after', 'Expires'),
           ('where', 'Where'), ('summary', 'What happened'))


def _rows(views):
    for v in views:
        row = dict(v)
        row['where'] = v.get('endpoint') or ':'.join(str(v[k]) for k in ('host', 'path') if v.get(k)) or ''
        yield row


class EmailNotifier(common.BaseNotifier):
    name = 'email'
    url_option = 'host'
    option_spec = dict(
        host=dict(type='str', required=True),
        port=dict(type='int', default=587),
        starttls=dict(type='str', default='required', choices=['required', 'never']),
        ca_path=dict(type='path'),
        validate_certs=dict(type='bool', default=True),
        username=dict(type='str'),
        password=dict(type='str', no_log=True),
        from_address=dict(type='str', required=True),
        to=dict(type='list', elements='str', required=True),
        subject_prefix=dict(type='str', default='[certforge]'),
        html=dict(type='bool', default=True),
        local_hostname=dict(type='str'),
        timeout=dict(type='float', default=10.0),
        retries=dict(type='int', default=3),
        retry_delay=dict(type='float', default=1.0),
        retry_max_delay=dict(type='float', default=30.0),
    )
    option_required_together = (('username', 'password'),)

    def _endpoint(self):
        return 'smtp://%s:%s' % (self.options['host'], self.options.get('port') or 587)

    def build(self, events, digest=False):
        views = [self.view(e) for e in events]
        if digest:
            subject = '%s %d certificate notification%s (worst: %s)' % (
                self.options.get('subject_prefix') or '', len(views), '' if len(views) == 1 else 's',
                common.worst(v['severity'] for v in views))
        else:
            subject = '%s %s' % (self.options.get('subject_prefix') or '', views[0]['summary'])
        subject = subject.strip()
        lines = [subject, '']
        for row in _rows(views):
            lines.append('- [%s] %s' % (row['severity'], row['summary']))
            for key, label in COLUMNS[1:-1]:
                if row.get(key) not in (None, ''):
                    lines.append('    %s: %s' % (label, row[key]))
        lines += ['', '-- %s (%s)' % (common.PROJECT, self.instance)]
        msg = EmailMessage()
        msg['From'] = self.options['from_address']
        msg['To'] = ', '.join(self.options['to'])
        msg['Subject'] = common.truncate(subject.replace('\n', ' '), 250)
        msg['Date'] = formatdate(localtime=False, usegmt=True)
        msg['Message-ID'] = make_msgid(domain='certforge.invalid')
        msg['X-Certforge-Events'] = str(len(views))
        msg.set_content('\n'.join(lines) + '\n')
        if self.options.get('html', True):
            head = ''.join('<th>%s</th>' % label for dummy, label in COLUMNS)
            body = ''.join('<tr>%s</tr>' % ''.join('<td>%s</td>' % html.escape(str(row.get(key, '')))
                                                   for key, dummy in COLUMNS) for row in _rows(views))
            msg.add_alternative('<html><body><h3>%s</h3><table border="1" cellpadding="4"><tr>%s</tr>%s</table>'
                                '<p>%s (%s)</p></body></html>\n' % (html.escape(subject), head, body, common.PROJECT,
                                                                    html.escape(self.instance)), subtype='html')
        return [common.Message(self._endpoint(), msg, label='digest' if digest else events[0].kind,
                               events=len(events), method='SMTP')]

    def preview(self, events, digest=False):
        out = []
        for message in self.build(events, digest=digest):
            msg = message.body
            text = msg.get_body(preferencelist=('plain',)).get_content()
            out.append(dict(label=message.label, method='SMTP', url=message.url, events=message.events,
                            headers=dict(From=msg['From'], To=msg['To'], Subject=msg['Subject']),
                            body=common.scrub(text, self.secrets())))
        return out

    def _fail(self, what, message, retryable=True):
        raise common.NotifyError('email notifier %s: %s: %s' % (self.instance, message.url, common.scrub(what, self.secrets())),
                                 option='%s.host' % self.instance,
                                 details=dict(notifier=self.instance, type=self.name, retryable=retryable))

    def _context(self):
        if not self.options.get('validate_certs', True):
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=self.options.get('ca_path') or None)

    def _send_once(self, message):
        host, port = self.options['host'], int(self.options.get('port') or 587)
        timeout = float(self.options.get('timeout') or 10.0)
        with smtplib.SMTP(host, port, local_hostname=self.options.get('local_hostname'), timeout=timeout) as smtp:
            smtp.ehlo()
            if self.options.get('starttls', 'required') == 'required':
                if not smtp.has_extn('starttls'):
                    self._fail('the server offers no STARTTLS; use a server that does (starttls: never only for '
                               'a trusted relay on the same host)', message, retryable=False)
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if self.options.get('username'):
                smtp.login(self.options['username'], self.options['password'])
            refused = smtp.send_message(message.body)
        if refused:
            self._fail('recipients refused: %s' % ', '.join(sorted(refused)), message, retryable=False)

    def send(self, message):
        retries = max(0, int(self.options.get('retries', 3)))
        last = 'no attempt'
        for attempt in range(retries + 1):
            try:
                self._send_once(message)
                return True
            except common.NotifyError:
                raise
            except ssl.SSLCertVerificationError as exc:
                self._fail('the server certificate is not trusted (%s); set ca_path to the CA that signed it'
                           % (exc.verify_message or 'verify failed'), message, retryable=False)
            except smtplib.SMTPAuthenticationError as exc:
                self._fail('login refused (%s); check username and password' % exc.smtp_code, message, retryable=False)
            except smtplib.SMTPResponseException as exc:
                text = exc.smtp_error.decode('utf-8', 'replace') if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
                last = 'SMTP %s %s' % (exc.smtp_code, text[:200])
                if not 400 <= int(exc.smtp_code) < 500:
                    self._fail(last, message, retryable=False)
            except (smtplib.SMTPException, socket.timeout, ssl.SSLError, OSError) as exc:
                last = 'connection failed (%s)' % type(exc).__name__
            if attempt < retries:
                self.sleep(self.backoff(attempt))
        self._fail('%s (after %d attempt%s)' % (last, retries + 1, '' if retries == 0 else 's'), message)
        return False


class Plugin:
    @hookimpl
    def certforge_notifiers(self):
        return {'email': EmailNotifier}


PLUGIN = Plugin()
