"""Fixtures of the PostgreSQL-only tests: a fresh database on the session's cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import PostgresCluster, cluster


@pytest.fixture
def pg() -> PostgresCluster:
    return cluster()


@pytest.fixture
def pg_url(pg: PostgresCluster) -> Iterator[str]:
    """The URL of an empty database, dropped after the test."""
    with pg.database() as url:
        yield url
