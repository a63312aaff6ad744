from __future__ import annotations

import optuna
import pytest

from bitnas.errors import StorageError
from bitnas.search import Problem, create_or_load_study, make_sampler, open_storage
from bitnas.search.storage import load_study
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
