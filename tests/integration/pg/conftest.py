"""Fixtures for the shared (PostgreSQL) order store: ``pg_server`` -- a throw-away cluster for
the session (tests/integration/pg_server.py), stopped by PID even when tests fail -- and
``pg_store_url`` -- a fresh database per test."""

import importlib.util
import sys
from pathlib import Path

import pytest


def _load(name, path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, str(path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


pg_server_module = _load('certforge_pg_server', Path(__file__).resolve().parents[1] / 'pg_server.py')
pg_server = pg_server_module.pytest_fixture()


@pytest.fixture
def pg_store_url(pg_server):
    """URL (with password) of a new empty database for one test."""
    return pg_server.create_database()
