"""Fixtures: a registry built from tests/wbem/model.py and a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pywbem

from tests.wbem.model import NS, ServiceProvider, build_registry
from vsms.providers.interop import install_interop
from vsms.providers.registry import Registry
from vsms.wbem.server import WbemServer

HOST = "testhost"


@pytest.fixture
def model() -> tuple[Registry, ServiceProvider]:
    reg, svc = build_registry(HOST)
    install_interop(reg)
    return reg, svc


@pytest.fixture
def server(model: tuple[Registry, ServiceProvider]) -> Iterator[WbemServer]:
    srv = WbemServer(model[0], http_port=0, workers=4)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def url(server: WbemServer) -> str:
    return f"http://127.0.0.1:{server.ports['http']}"


@pytest.fixture
def conn(url: str) -> Iterator[pywbem.WBEMConnection]:
    c = pywbem.WBEMConnection(url, default_namespace=NS, timeout=30)
    try:
        yield c
    finally:
        c.close()
