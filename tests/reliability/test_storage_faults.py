"""Storage faults end in a clear StorageError, and the data already stored is left untouched:
an unwritable path, a corrupted database or journal, a study name taken by a study with other
objectives, a study measured under other settings."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import optuna
import pytest

import bitnas
from bitnas.errors import StorageError
from bitnas.search import counts
from tests.conftest import small_study_toml


def study_file(tmp_path: Path, storage: str) -> Path:
    f = tmp_path / "s.toml"
    f.write_text(small_study_toml("s", bitops="60_000", epochs=1, storage=storage))
    return f


def snapshot(folder: Path) -> dict[str, object]:
    """What ``folder``'s storage holds: a journal's bytes, a SQLite file's full SQL dump
    (its side files, -wal and -shm, change bytes on every read, never content)."""
    out: dict[str, object] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix == ".log":
            out[p.name] = p.read_bytes()
        elif p.suffix == ".db":
            with contextlib.closing(sqlite3.connect(p)) as con:
                out[p.name] = list(con.iterdump())
    assert out, f"no storage in {folder}"
    return out


@pytest.mark.parametrize("scheme", ["sqlite", "journal"])
def test_unwritable_path(tmp_path, scheme):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the storage's folder should be")
    url = f"{scheme}:///{blocker}/s.{'db' if scheme == 'sqlite' else 'log'}"
    with pytest.raises(
        StorageError, match=f"cannot create the folder of storage {url}: .*File exists"
    ):
        bitnas.run(study_file(tmp_path, url), progress=False)
    assert blocker.read_text() == "a file where the storage's folder should be"
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    with pytest.raises(StorageError, match="names a folder"):
        bitnas.run(study_file(tmp_path, f"{scheme}:///{folder}"), progress=False)


@pytest.mark.parametrize(
    ("name", "garbage"),
    [("bad.db", b"this is not a database" * 100), ("bad.log", b"\x00\xff{not json\n" * 50),
     ("half.log", b'{"op_code": 0, "worker_id": "x"}\nnot json at all\n{"op_code": 0}\n')],
)  # fmt: skip
def test_corrupted_storage_is_a_clear_error_and_left_alone(tmp_path, name, garbage):
    f = tmp_path / name
    f.write_bytes(garbage)
    scheme = "sqlite" if name.endswith(".db") else "journal"
    with pytest.raises(StorageError, match=f"cannot open storage {scheme}:///{f}"):
        bitnas.run(study_file(tmp_path, f"{scheme}:///{f}"), progress=False)
    assert f.read_bytes() == garbage


@pytest.mark.parametrize("scheme", ["sqlite", "journal"])
def test_study_name_taken_with_other_directions(tmp_path, scheme):
    data = tmp_path / "data"
    data.mkdir()  # an absolute path's folder must exist (storage.py)
    url = f"{scheme}:///{data}/s.{'db' if scheme == 'sqlite' else 'log'}"
    store = bitnas.search.open_storage(url)
    other = optuna.create_study(storage=store, study_name="s", directions=["minimize"] * 2)
    other.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=3)
    del store, other
    before = snapshot(data)
    with pytest.raises(
        StorageError,
        match=r"study 's' in .* has objectives None \['MINIMIZE', 'MINIMIZE'\].*left untouched",
    ):
        bitnas.run(study_file(tmp_path, url), progress=False)
    assert snapshot(data) == before
    kept = optuna.load_study(
        study_name="s", storage=url if scheme == "sqlite" else bitnas.search.open_storage(url)
    )
    assert len(kept.trials) == 3


def test_study_measured_under_other_settings(tmp_path):
    (tmp_path / "data").mkdir()  # an absolute path's folder must exist (storage.py)
    url = f"journal:///{tmp_path}/data/s.log"
    f = study_file(tmp_path, url)
    bitnas.run(f, trials=2, progress=False)
    before = snapshot(tmp_path / "data")
    f.write_text(f.read_text().replace("epochs = 1", "epochs = 2"))
    with pytest.raises(
        StorageError, match=r"measured under other settings.*\[train\] epochs: 1 -> 2"
    ):
        bitnas.run(f, trials=3, progress=False)
    assert snapshot(tmp_path / "data") == before
    assert (
        counts(bitnas.open_result(f.with_name("s.toml"), storage=url).study.get_trials())[
            "finished"
        ]
        == 2
    )
