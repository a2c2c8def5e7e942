"""The devices tests run against a real Service served by a real WbemServer (tests/e2e)."""

from tests.e2e.conftest import conn, served

__all__ = ["conn", "served"]
