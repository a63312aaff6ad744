from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from bitnas.errors import StorageError
from bitnas.search import Problem, create_or_load_study, make_sampler, open_storage
from bitnas.search.storage import _schema_race, load_study
from bitnas.spaces import Budget
from tests.conftest import SpyEvaluator, small_space

ROOT = Path(__file__).resolve().parents[2]


def test_sqlite_folder_is_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # inside the working directory (outside: refused, see below)
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


def test_a_schema_another_process_is_creating_is_waited_for(tmp_path, monkeypatch):
    """Optuna creates a new database's tables without a lock: a run opening the file while
    another process (the dashboard, `bitnas pareto`) creates them got "table ... already
    exists" and died. bitnas tries again; other errors still fail at once."""
    import sqlalchemy.exc

    real = optuna.storages.RDBStorage
    calls = []
    raced = []

    def racing(url, **kw):
        calls.append(url)
        if not raced:  # the first open only: another process is creating the tables
            raced.append(url)
            raise sqlalchemy.exc.OperationalError("CREATE TABLE studies", {}, Exception(
                "table studies already exists"))  # fmt: skip
        return real(url, **kw)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    open_storage(f"sqlite:///{tmp_path}/race.db")
    assert len(calls) == 2
    calls.clear()
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    with pytest.raises(StorageError, match="cannot open storage"):
        open_storage(f"sqlite:///{broken}")
    assert len(calls) == 1, "an error that is not the schema race is not retried"


class _PgError(Exception):
    pgcode = "42P07"  # PostgreSQL: duplicate table


def _db_error(kind: str, sql: str, message: str, orig: type[Exception] = Exception) -> Exception:
    import sqlalchemy.exc

    return getattr(sqlalchemy.exc, kind)(sql, {}, orig(message))


@pytest.mark.parametrize(
    ("kind", "sql", "message", "orig", "race"),
    [
        ("OperationalError", "CREATE TABLE studies", "table studies already exists", Exception, True),
        ("IntegrityError", "INSERT INTO alembic_version", "UNIQUE constraint failed: alembic_version.version_num", Exception, True),
        ("ProgrammingError", "CREATE TABLE studies", 'relation "studies" already exists', _PgError, True),
        ("OperationalError", "INSERT INTO alembic_version", "attempt to write a readonly database", Exception, False),
        ("OperationalError", "INSERT INTO alembic_version", "database is locked", Exception, False),
        ("DatabaseError", "SELECT 1", "file is not a database", Exception, False),
    ],
)  # fmt: skip
def test_only_the_schema_race_is_tried_again(kind, sql, message, orig, race):
    assert _schema_race(_db_error(kind, sql, message, orig)) is race


CREATOR = """
import os, sys, time
from bitnas.search import open_storage
open(sys.argv[2] + "." + str(os.getpid()), "w").close()  # ready
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
open_storage("sqlite:///" + sys.argv[1])
"""


@pytest.mark.slow
def test_processes_creating_one_new_database_at_once_all_open_it(tmp_path):
    # before the retry, 4 processes at once failed in about 2 of 5 tries (table exists)
    for i in range(4):
        db, go = tmp_path / f"new{i}.db", tmp_path / f"go{i}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CREATOR, str(db), str(go)],
                cwd=ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        deadline = time.time() + 120
        while len(list(tmp_path.glob(f"go{i}.*"))) < 4 and time.time() < deadline:
            time.sleep(0.01)
        go.touch()
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-2000:]


def test_a_missing_folder_outside_the_working_directory_is_refused_not_created(
    tmp_path, monkeypatch
):
    from bitnas.search.storage import open_storage

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    far = tmp_path / "nonexistent" / "dir"
    for url in (f"sqlite:///{far}/x.db", f"journal:///{far}/x.log"):
        with pytest.raises(StorageError, match=rf"the folder {far} of storage .* does not exist"):
            open_storage(url)
    assert not far.parent.exists()
    open_storage("sqlite:///runs/x.db")  # the default's runs/ is still created
    open_storage(f"sqlite:///{work}/deeper/y.db")  # as is any folder inside the working dir
    assert (work / "runs" / "x.db").exists() and (work / "deeper" / "y.db").exists()


def test_unsupported_schemes_list_the_supported_ones_and_name_their_source(tmp_path):
    from bitnas.errors import SpecError
    from bitnas.search.storage import check_url, open_storage
    from bitnas.studies.api import run
    from tests.conftest import small_study_toml

    with pytest.raises(StorageError, match=r"unsupported scheme 'mongodb': use one of sqlite://"):
        open_storage("mongodb://h/db")
    check_url("postgresql+psycopg2://u@h/db")  # a driver suffix is fine
    bad = tmp_path / "bad.toml"
    bad.write_text(small_study_toml("s", bitops="60_000", epochs=1, storage="mongodb://h/db"))
    with pytest.raises(SpecError, match=r"unsupported scheme 'mongodb'.*bad\.toml"):
        run(bad, storage=f"sqlite:///{tmp_path}/ok.db")  # checked even when overridden
    good = tmp_path / "good.toml"
    good.write_text(small_study_toml("s", bitops="60_000", epochs=1))
    with pytest.raises(StorageError, match=r"'redis://h' \(from --storage\) has an unsupported"):
        run(good, storage="redis://h")


def test_a_budget_below_the_cheapest_names_the_file(tmp_path):
    from bitnas.errors import BudgetError
    from bitnas.studies.api import run
    from tests.conftest import small_study_toml

    f = tmp_path / "tight.toml"
    f.write_text(small_study_toml("s", bitops="10", epochs=1, storage=f"sqlite:///{tmp_path}/t.db"))
    with pytest.raises(BudgetError, match=r"\(in \[budget\] of .*tight\.toml\)"):
        run(f)
    assert not (tmp_path / "t.db").exists()
