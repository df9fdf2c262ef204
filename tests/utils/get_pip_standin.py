# Copyright: Contributors to the certforge.pki collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for ansible-test's pip bootstrap script (get-pip-<version>.py).

Every virtual environment that ansible-test creates starts without pip. ansible-test
bootstraps pip by running ``~/.ansible/test/cache/get_pip_<version>.py``, a file it
otherwise downloads from a host that our CI cannot reach. PyPI is reachable, so this
file plays both parts of the workaround:

``python tests/utils/get_pip_standin.py --seed [CACHE_DIR]``
    Run by ``make sanity``. Reads the pip version pinned by the installed ansible-test,
    downloads that pip wheel from PyPI into CACHE_DIR (default
    ``~/.ansible/test/cache``) and copies this file there as
    ``get_pip_<version with underscores>.py``. Does nothing that is already done.

Run by ansible-test from the cache (through ``GET_PIP``)
    Installs pip from the wheel lying beside it, passing on ansible-test's pip
    arguments (``--no-setuptools`` and ``--no-wheel`` are get-pip options, dropped).
"""

from __future__ import annotations

import filecmp
import glob
import os
import re
import shutil
import subprocess
import sys

DEFAULT_CACHE = os.path.join('~', '.ansible', 'test', 'cache')
GET_PIP_ONLY_OPTIONS = ('--no-setuptools', '--no-wheel')


def pinned_pip_version():
    """Return the pip version that the installed ansible-test bootstraps."""
    import ansible_test  # pylint: disable=import-outside-toplevel

    path = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
    with open(path, encoding='utf-8') as handle:
        match = re.search(r"default_packages\s*=\s*dict\(\s*pip\s*=\s*'([^']+)'", handle.read())
    if not match:
        raise SystemExit('get_pip_standin: cannot find the pip version pinned in %s' % path)
    return match.group(1)


def seed(cache_dir):
    """Put the pip wheel and this stand-in into ansible-test's cache directory."""
    cache_dir = os.path.abspath(os.path.expanduser(cache_dir))
    version = pinned_pip_version()
    os.makedirs(cache_dir, exist_ok=True)

    wheel = os.path.join(cache_dir, 'pip-%s-py3-none-any.whl' % version)
    if os.path.isfile(wheel):
        print('get_pip_standin: %s already cached' % os.path.basename(wheel))
    else:
        subprocess.check_call([
            sys.executable, '-m', 'pip', 'download', '--quiet', '--disable-pip-version-check',
            '--no-deps', '--only-binary=:all:', '--dest', cache_dir, 'pip==%s' % version,
        ])
        if not os.path.isfile(wheel):
            raise SystemExit('get_pip_standin: pip download did not produce %s' % wheel)
        print('get_pip_standin: downloaded %s' % os.path.basename(wheel))

    target = os.path.join(cache_dir, 'get_pip_%s.py' % version.replace('.', '_'))
    source = os.path.abspath(__file__)
    if os.path.isfile(target) and filecmp.cmp(source, target, shallow=False):
        print('get_pip_standin: %s up to date' % os.path.basename(target))
    else:
        shutil.copyfile(source, target)
        print('get_pip_standin: wrote %s' % os.path.basename(target))
    return 0


def bootstrap(args):
    """Install pip from the cached wheel, as get-pip.py would."""
    here = os.path.dirname(os.path.abspath(__file__))
    match = re.match(r'get_pip_(\d+(?:_\d+)*)\.py$', os.path.basename(__file__))
    wheels = []
    if match:
        wheels = glob.glob(os.path.join(here, 'pip-%s-py3-none-any.whl' % match.group(1).replace('_', '.')))
    if not wheels:
        wheels = sorted(glob.glob(os.path.join(here, 'pip-*-py3-none-any.whl')))
    if not wheels:
        raise SystemExit('get_pip_standin: no pip wheel in %s; run `make sanity` to seed it' % here)

    sys.path.insert(0, wheels[-1])
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel,import-error

    pip_args = [arg for arg in args if arg not in GET_PIP_ONLY_OPTIONS]
    return pip_main(['install', '--upgrade', '--force-reinstall', '--find-links', here] + pip_args)


def main(argv):
    """Dispatch between seeding the cache and acting as get-pip."""
    if argv[:1] == ['--seed']:
        if len(argv) > 2:
            raise SystemExit('usage: get_pip_standin.py --seed [CACHE_DIR]')
        return seed(argv[1] if len(argv) == 2 else DEFAULT_CACHE)
    return bootstrap(argv)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
