"""Files kept beside a study through ``optuna.artifacts``, where optuna-dashboard shows them.

Per trial: ``architecture-<number>.json`` (the resolved architecture). Per study: files such
as ``pareto.png`` that a run refreshes. The store is a folder on the driver's disk; only the
driver writes it (workers never see the study), so it works the same for every backend.

Where the folder is, unless a study file says (``[study] artifacts = "DIR"``):

- ``sqlite:///runs/digits.db``  -> ``runs/digits.artifacts/`` (beside the file)
- any other database URL        -> ``runs/artifacts/`` (relative to the working directory)
- ``sqlite:///:memory:``        -> none (nothing outlives the process)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta, upload_artifact

from bitnas.errors import StorageError
from bitnas.spaces.architecture import Architecture

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

__all__ = [
    "ARCH_FILENAME",
    "OTHER_DATABASES_DIR",
    "arch_filename",
    "default_artifact_dir",
    "open_artifact_store",
    "put_study_file",
    "upload_architecture",
]

ARCH_FILENAME = "architecture-{number}.json"
#: Default artifact folder for storages that are not a SQLite file (PostgreSQL, MySQL, ...).
OTHER_DATABASES_DIR = "runs/artifacts"


def arch_filename(number: int) -> str:
    return ARCH_FILENAME.format(number=number)


def default_artifact_dir(storage_url: str) -> Path | None:
    """The artifact folder that belongs to ``storage_url`` (see the module docstring)."""
    if storage_url.startswith("sqlite:///"):
        path = storage_url[len("sqlite:///") :]
        if path in ("", ":memory:"):
            return None
        return Path(path).with_suffix(".artifacts")
    if storage_url.startswith("sqlite:"):
        return None
    return Path(OTHER_DATABASES_DIR)


def open_artifact_store(directory: str | Path) -> FileSystemArtifactStore:
    """A file-system artifact store in ``directory`` (created if missing)."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(
            f"cannot create the artifact folder {path}: {e.strerror or e} (set another with "
            '[study] artifacts = "DIR")'
        ) from None
    if not os.access(path, os.W_OK):
        raise StorageError(f"the artifact folder {path} is not writable")
    return FileSystemArtifactStore(path)


def _upload_bytes(
    store: ArtifactStore,
    target: optuna.Study | optuna.trial.Trial,
    filename: str,
    data: bytes,
) -> str:
    # upload_artifact takes a file path (the stored name is its basename): write a temporary
    # file under the wanted name.
    with tempfile.TemporaryDirectory(prefix="bitnas-artifact-") as tmp:
        path = Path(tmp) / filename
        path.write_bytes(data)
        return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=target)


def upload_architecture(store: ArtifactStore, trial: optuna.trial.Trial, arch: Architecture) -> str:
    """Attach ``arch`` as ``architecture-<number>.json`` to ``trial``; returns the artifact id."""
    text = json.dumps(json.loads(arch.to_json()), indent=2, sort_keys=True) + "\n"
    return _upload_bytes(store, trial, arch_filename(trial.number), text.encode())


def put_study_file(store: ArtifactStore, study: optuna.Study, filename: str, data: bytes) -> str:
    """Attach ``data`` to ``study`` as ``filename``, replacing the content of an existing study
    artifact of that name (a re-run refreshes its plot instead of piling up copies); returns
    the artifact id."""
    for meta in get_all_artifact_meta(study):
        if meta.filename == filename:
            with tempfile.TemporaryFile() as f:
                f.write(data)
                f.seek(0)
                store.write(meta.artifact_id, f)
            return meta.artifact_id
    return _upload_bytes(store, study, filename, data)
