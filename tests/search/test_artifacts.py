"""Where artifacts go, and study files replaced in place."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from bitnas.errors import StorageError
from bitnas.search.artifacts import default_artifact_dir, open_artifact_store, put_study_file


@pytest.mark.parametrize(
    ("url", "folder"),
    [
        ("sqlite:///runs/digits.db", Path("runs/digits.artifacts")),
        ("sqlite:////abs/x/s.sqlite3", Path("/abs/x/s.artifacts")),
        ("postgresql://u@host/db", Path("runs/artifacts")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
    ],
)
def test_default_folder_follows_the_storage(url, folder):
    assert default_artifact_dir(url) == folder


def test_study_file_is_replaced_not_piled_up(tmp_path):
    store = open_artifact_store(tmp_path / "new" / "folder")  # created
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    first = put_study_file(store, study, "pareto.png", b"one")
    other = put_study_file(store, study, "notes.txt", b"x")
    again = put_study_file(store, study, "pareto.png", b"two")
    assert again == first != other
    metas = optuna.artifacts.get_all_artifact_meta(study)
    assert sorted(m.filename for m in metas) == ["notes.txt", "pareto.png"]
    with store.open_reader(first) as f:
        assert f.read() == b"two"


def test_unusable_folder_is_a_storage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match=r"cannot create the artifact folder .*file/sub"):
        open_artifact_store(blocker / "sub")
