from __future__ import annotations

import optuna
import pytest

from bitnas.errors import StorageError
from bitnas.search import Problem, create_or_load_study, make_sampler, open_storage
from bitnas.search.storage import load_study
from bitnas.spaces import Budget
from tests.conftest import SpyEvaluator, small_space


def test_sqlite_folder_is_created(tmp_path):
    url = f"sqlite:///{tmp_path}/deep/er/s.db"
    open_storage(url)
    assert (tmp_path / "deep" / "er").is_dir()


def test_not_a_url():
    with pytest.raises(StorageError, match="must be a database URL"):
        open_storage("runs/x.db")


def test_unusable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(StorageError, match="cannot create the folder of storage"):
        open_storage(f"sqlite:///{blocker}/s.db")


def test_corrupted_file_is_a_clear_error_and_left_alone(tmp_path):
    f = tmp_path / "bad.db"
    f.write_bytes(b"this is not a database" * 100)
    before = f.read_bytes()
    with pytest.raises(StorageError, match="cannot open storage"):
        open_storage(f"sqlite:///{f}")
    assert f.read_bytes() == before


def test_missing_storage_without_create(tmp_path):
    with pytest.raises(StorageError, match="no study storage at"):
        open_storage(f"sqlite:///{tmp_path}/none.db", create=False)


def test_existing_study_with_other_directions_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    store = open_storage(url)
    optuna.create_study(storage=store, study_name="x", directions=["minimize", "minimize"])
    problem = Problem(space=small_space(), evaluator=SpyEvaluator())
    with pytest.raises(StorageError, match="left untouched"):
        create_or_load_study(store, "x", problem, make_sampler("random", 0), url)
    study = create_or_load_study(store, "y", problem, make_sampler("random", 0), url)
    assert study.metric_names == ["val_accuracy", "bitops"]
    assert load_study(store, "y").study_name == "y"
    with pytest.raises(StorageError, match=r"it holds \['x', 'y'\]"):
        load_study(store, "z", url)


def test_a_study_created_by_another_run_meanwhile_is_continued(tmp_path, monkeypatch):
    """Two runs starting together: the one that loses the race to create the study loads it."""
    import bitnas.search.storage as storage_mod

    url = f"journal:///{tmp_path}/race.log"
    store = open_storage(url)
    problem = Problem(space=small_space(), evaluator=SpyEvaluator(), budget=Budget(40_000))
    first = create_or_load_study(store, "race", problem, make_sampler("random", 0), url)
    # the second run checked the names before the first created the study
    real = storage_mod.study_names
    seen = []

    def stale_then_real(s):
        seen.append(1)
        return [] if len(seen) == 1 else real(s)

    monkeypatch.setattr(storage_mod, "study_names", stale_then_real)
    second = create_or_load_study(store, "race", problem, make_sampler("random", 1), url)
    assert second._study_id == first._study_id
    assert second.metric_names == problem.metric_names
