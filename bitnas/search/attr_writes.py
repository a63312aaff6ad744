"""Writing several attributes of one trial in one storage round trip.

A bitnas trial carries about twenty attributes (the architecture and its flat views for
optuna-dashboard, its cost, its constraint, what training measured). Optuna's storage API
writes one attribute per call, and each call is a transaction of its own: a commit (an fsync
on SQLite, a network round trip and a WAL flush on PostgreSQL) or an appended journal record
with its file lock. For a trial that trains in a second (a table, a supernet, a Ray trial on a
small model) those commits are most of the engine's time per trial (issue 15), and on a
shared database server they are most of its load.

Optuna has no batched attribute write, so this module adds one over what each storage already
does per attribute:

- RDB storages (SQLite, PostgreSQL, MySQL): the trial is read and checked updatable once,
  then every attribute goes in one multi-row form of the upsert Optuna's
  ``RDBStorage._set_trial_attr_without_commit`` runs for one (other dialects: that method per
  attribute), then one commit. A ``RetryingRDBStorage`` retries the whole batch as one
  call (upserts of the same values: a retry after a commit that landed writes them again).
  An integrity error (a race that only the non-upsert path of an unknown dialect can meet)
  rolls the batch back and the attributes are written one call each instead.
- Journal storages: one record per attribute (Optuna's replay takes one key per record), all
  appended in one ``append_logs`` call under the storage's lock, then one replay. A finished
  trial is refused before anything is appended.
- Any other storage (in-memory, a user's own): one call per attribute, as before.

What a trial reads back is the same in every case: the storage's rows or records are exactly
those the per-attribute calls would leave (``tests/search/test_attr_writes.py`` compares them),
and a finished trial refuses the batch as it refuses one attribute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages._cached_storage import _CachedStorage

from bitnas.search.storage_retry import RetryingRDBStorage

__all__ = ["set_trial_attrs", "write_attrs"]


def _rdb_write(
    rdb: RDBStorage, trial_id: int, user: Mapping[str, Any], system: Mapping[str, Any]
) -> None:
    import sqlalchemy.exc
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    try:
        with _create_scoped_session(rdb.scoped_session) as session:
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
            rdb.check_trial_is_updatable(trial_id, trial.state)
            for model, attrs in (
                (models.TrialUserAttributeModel, user),
                (models.TrialSystemAttributeModel, system),
            ):
                if attrs:
                    _upsert(rdb, session, model, trial_id, attrs)
    except sqlalchemy.exc.IntegrityError:
        for key, value in user.items():
            RDBStorage.set_trial_user_attr(rdb, trial_id, key, value)
        for key, value in system.items():
            RDBStorage.set_trial_system_attr(rdb, trial_id, key, value)


def _upsert(
    rdb: RDBStorage, session: Any, model: Any, trial_id: int, attrs: Mapping[str, Any]
) -> None:
    """One multi-row INSERT ... ON CONFLICT UPDATE: the statement Optuna's
    ``_set_trial_attr_without_commit`` runs for one attribute, for all of them at once (a
    dialect without upserts: Optuna's own statement per attribute)."""
    import sqlite3

    from sqlalchemy.dialects import mysql, postgresql, sqlite

    # one statement of 3 bound parameters a row: SQLite allows 32,766 (999 before 3.32), far
    # above the ~20 attributes of a bitnas trial
    rows = [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()]
    dialect = rdb.engine.name
    if dialect == "mysql":
        my = mysql.insert(model).values(rows)
        session.execute(my.on_duplicate_key_update(value_json=my.inserted.value_json))
    elif dialect in ("postgresql", "sqlite") and (
        dialect == "postgresql" or sqlite3.sqlite_version_info >= (3, 24, 0)
    ):
        ins = (postgresql if dialect == "postgresql" else sqlite).insert(model).values(rows)
        session.execute(
            ins.on_conflict_do_update(
                index_elements=[model.trial_id, model.key],
                set_={"value_json": ins.excluded.value_json},
            )
        )
    else:
        for key, value in attrs.items():
            rdb._set_trial_attr_without_commit(session, model, trial_id, key, value)


def _journal_write(
    journal: JournalStorage, trial_id: int, user: Mapping[str, Any], system: Mapping[str, Any]
) -> None:
    from optuna.storages.journal._storage import JournalOperation

    # refused before anything is appended, as Optuna refuses one attribute: a record for a
    # finished trial would raise again in every later replay of this process
    journal.check_trial_is_updatable(trial_id, journal.get_trial(trial_id).state)
    with journal._thread_lock:
        worker = journal._replay_result.worker_id
        logs = [
            {"op_code": op, "worker_id": worker, "trial_id": trial_id, field: {key: value}}
            for op, field, attrs in (
                (JournalOperation.SET_TRIAL_USER_ATTR, "user_attr", user),
                (JournalOperation.SET_TRIAL_SYSTEM_ATTR, "system_attr", system),
            )
            for key, value in attrs.items()
        ]
        journal._backend.append_logs(logs)
        # another run finished the trial in between: each of its records raises as it is
        # replayed (and is consumed); replay them all, then raise the first error
        first: Exception | None = None
        for _ in range(len(logs) + 1):
            try:
                journal._sync_with_backend()
                break
            except (optuna.exceptions.UpdateFinishedTrialError, KeyError) as e:
                first = first or e
        if first is not None:
            raise first


def write_attrs(
    storage: BaseStorage,
    trial_id: int,
    user: Mapping[str, Any] | None = None,
    system: Mapping[str, Any] | None = None,
) -> None:
    """Set the user attributes ``user`` and system attributes ``system`` of a trial, in one
    transaction where the storage allows it (module docstring)."""
    user, system = dict(user or {}), dict(system or {})
    if not user and not system:
        return
    backend = storage._backend if isinstance(storage, _CachedStorage) else storage
    if isinstance(backend, RetryingRDBStorage):
        backend._call("write_attrs", _rdb_write, trial_id, user, system)
    elif isinstance(backend, RDBStorage):
        _rdb_write(backend, trial_id, user, system)
    elif isinstance(backend, JournalStorage):
        _journal_write(backend, trial_id, user, system)
    else:
        for key, value in user.items():
            storage.set_trial_user_attr(trial_id, key, value)
        for key, value in system.items():
            storage.set_trial_system_attr(trial_id, key, value)


def set_trial_attrs(
    trial: optuna.trial.Trial,
    user: Mapping[str, Any] | None = None,
    system: Mapping[str, Any] | None = None,
) -> None:
    """``trial.set_user_attr`` for every item of ``user`` (and the storage's
    ``set_trial_system_attr`` for ``system``) in one round trip; the trial's own view of its
    attributes is updated as ``set_user_attr`` updates it."""
    write_attrs(trial.storage, trial._trial_id, user, system)
    cached = trial._cached_frozen_trial
    for key, value in (user or {}).items():
        cached.user_attrs[key] = value
    for key, value in (system or {}).items():
        cached.system_attrs[key] = value
