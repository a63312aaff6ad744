from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.pg import PgServer, binaries
from tests.reliability.raycluster import RayCluster


@pytest.fixture
def pg() -> Iterator[PgServer]:
    """A PostgreSQL server of this test's own on 127.0.0.1 (tests/reliability/pg.py)."""
    bindir = binaries()
    if bindir is None:
        pytest.skip(
            "PostgreSQL's initdb/postgres are not installed (Debian: apt-get install "
            "postgresql; .ci/run installs it)"
        )
    server = PgServer(bindir)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def ray_head(tmp_path: Path) -> Iterator[RayCluster]:
    """A Ray head of this test's own on 127.0.0.1, 2 CPUs (tests/reliability/raycluster.py)."""
    cluster = RayCluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()
