# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from fake_acme import FakeAcme  # noqa: E402  pylint: disable=wrong-import-position


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def fake_acme():
    servers = []

    def make(**kwargs):
        server = FakeAcme(**kwargs).start()
        server.http01_port = free_port()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
