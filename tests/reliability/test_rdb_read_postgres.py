"""bitnas/search/rdb_read.py on a real PostgreSQL server (native ENUM types, server-side
timestamps): the one-read loader equals Optuna's ORM read, and preload feeds the cache."""

from __future__ import annotations

import optuna
import pytest

from bitnas.search.rdb_read import preload, read_trials
from bitnas.search.storage import open_storage
from tests.search.test_rdb_read import _fill

pytestmark = [pytest.mark.slow]


def test_one_read_equals_optunas_read_on_postgres(pg):  # type: ignore[no-untyped-def]
    study = optuna.create_study(
        storage=open_storage(pg.url), study_name="s", directions=["maximize", "minimize"]
    )
    _fill(study)
    fresh = optuna.load_study(study_name="s", storage=open_storage(pg.url, create=False))
    backend = fresh._storage._backend
    mine = read_trials(backend, fresh._study_id)
    assert len(mine) == 14
    assert mine == backend.get_all_trials(fresh._study_id, deepcopy=False)
    assert preload(fresh) is True
    assert fresh.get_trials(deepcopy=False) == mine
