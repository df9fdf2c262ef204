"""The examples of docs/connectors.md are the throw-away packages the kit runs: they cannot rot."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = (HERE.parents[2] / 'docs' / 'connectors.md').read_text()


def test_issuer_example_is_the_tested_package():
    source = (HERE / 'packages' / 'toy_async_ca' / 'toy_async_ca' / '__init__.py').read_text()
    assert source in DOC and len(source.splitlines()) < 150


def test_target_example_is_the_tested_package():
    source = (HERE / 'packages' / 'toy_haproxy_like' / 'toy_haproxy_like' / '__init__.py').read_text()
    assert source in DOC and len(source.splitlines()) < 150


def test_packaging_example_is_the_tested_one():
    assert (HERE / 'packages' / 'toy_async_ca' / 'pyproject.toml').read_text() in DOC
