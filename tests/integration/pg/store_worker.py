"""A controller process using the shared order store (run by the tests as a subprocess).

    store_worker.py race URL LEDGER START KEY...   wait for the START file, then for each key
        decide under the lock: submit (append "key pid" to LEDGER, the stand-in CA) when new,
        else resume; prints one JSON line {key: action}
    store_worker.py hold URL KEY                    take the lock of KEY, print "locked", then
        for each line on stdin: "write" -> record an intent (prints "written" or
        "refused <error class>"), "exit" -> leave (release)
"""

import json
import os
import sys
import time

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import TransientError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import Order
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import open_store


def race(url, ledger, start, keys):
    store = open_store(url, lock_timeout=120)
    deadline = time.monotonic() + 60
    while not os.path.exists(start):          # bounded poll: both processes begin together
        if time.monotonic() > deadline:
            raise SystemExit('start file never appeared')
        time.sleep(0.002)
    actions = {}
    for key in keys:
        with store.lock(key):
            found = store.resume_or_new(key, 'fp-' + key)
            if found.action == 'new':
                store.record_intent(key, 'fp-' + key, issuer='ca')
                fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, ('%s %d\n' % (key, os.getpid())).encode())
                finally:
                    os.close(fd)
                store.record_submitted(key, Order(issuer='ca', id='%s-%d' % (key, os.getpid())))
                actions[key] = 'submitted'
            else:
                actions[key] = found.action
    print(json.dumps(actions), flush=True)


def hold(url, key):
    store = open_store(url)
    try:
        with store.lock(key):
            print('locked', flush=True)
            for line in sys.stdin:
                command = line.strip()
                if command == 'write':
                    try:
                        store.record_intent(key, 'fp-holder', token='holder', issuer='ca')
                        print('written', flush=True)
                    except TransientError as exc:
                        print('refused %s' % type(exc).__name__, flush=True)
                elif command == 'exit':
                    break
    except TransientError as exc:
        print('release %s' % type(exc).__name__, flush=True)


if __name__ == '__main__':
    if sys.argv[1] == 'race':
        race(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        hold(sys.argv[2], sys.argv[3])
