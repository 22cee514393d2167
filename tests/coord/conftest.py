"""Fixtures of the coordinator tests: a throwaway PostgreSQL cluster for the session (or the server
``FERROLOCK_TEST_PG_URL`` names), per-test clusters for tests that restart or cut off the server, and
the ``coord_url`` parameter that runs the parity suite on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg import PgCluster, external_url

LEASE = "2s"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[PgCluster]:
    cluster = PgCluster.create().start()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def pg_url(request: pytest.FixtureRequest) -> str:
    url = external_url()
    if url is not None:
        return url
    cluster: PgCluster = request.getfixturevalue("pg_template")
    return cluster.url(lease=LEASE)


@pytest.fixture
def own_cluster(pg_template: PgCluster) -> Iterator[PgCluster]:
    """A cluster of this test's own (copied from the session's), for restarts and faults."""
    cluster = PgCluster.create(template=pg_template).start()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(params=["file", "postgresql"])
def coord_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file://{tmp_path / 'coord'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def name() -> str:
    """A lock name no other test uses (the PostgreSQL cluster is shared by the session)."""
    return f"test-{uuid.uuid4().hex[:12]}/lock"
