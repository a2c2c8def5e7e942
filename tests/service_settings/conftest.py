"""The service-settings tests use the components tests' module server (a real ``vsms serve``)."""

from tests.components.conftest import conn, server

__all__ = ["conn", "server"]
