# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Error taxonomy of the certforge core (public contract).

Library code raises these; only a module's ``main()`` (or an action plugin's ``run()``)
turns them into ``fail_json``.  Every error carries the option it is about and the fix,
so the message a user reads names both.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class CertforgeError(Exception):
    """Base class.  ``option`` names the offending option, ``fix`` says what to do."""

    kind = 'error'

    def __init__(self, msg, option=None, fix=None, details=None):
        super(CertforgeError, self).__init__(msg)
        self.msg = msg
        self.option = option
        self.fix = fix
        self.details = details or {}

    def __str__(self):
        parts = []
        if self.option:
            parts.append('%s: %s' % (self.option, self.msg))
        else:
            parts.append(self.msg)
        if self.fix:
            parts.append('Fix: %s' % self.fix)
        return ' '.join(parts)

    def to_result(self):
        """Fields for ``fail_json`` (msg plus structured hints), never a traceback."""
        result = {'msg': str(self), 'error_kind': self.kind}
        if self.option:
            result['error_option'] = self.option
        if self.details:
            result['error_details'] = self.details
        return result


class ConfigError(CertforgeError):
    """Bad or inconsistent input: fix the playbook."""

    kind = 'config'


class AuthError(CertforgeError):
    """The CA refused our credentials."""

    kind = 'auth'


class PolicyError(CertforgeError):
    """The request is well formed but a policy forbids it (allowed domains, wildcard, profile)."""

    kind = 'policy'


class NotReadyError(CertforgeError):
    """The CA has not finished yet; poll again later."""

    kind = 'not_ready'

    def __init__(self, msg, retry_after=None, **kwargs):
        super(NotReadyError, self).__init__(msg, **kwargs)
        self.retry_after = retry_after


class TransientError(CertforgeError):
    """A temporary failure (429, 5xx, connection reset); safe to retry."""

    kind = 'transient'

    def __init__(self, msg, retry_after=None, **kwargs):
        super(TransientError, self).__init__(msg, **kwargs)
        self.retry_after = retry_after


class PermanentError(CertforgeError):
    """The CA or target refused for good; retrying will not help."""

    kind = 'permanent'


class DeployError(PermanentError):
    """A deploy step (validate, reload, verify) failed; files were rolled back."""

    kind = 'deploy'
