"""Opening Optuna storages and studies, with clear errors instead of SQLAlchemy tracebacks."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna

from bitnas.errors import StorageError
from bitnas.search.problem import Problem
from bitnas.search.storage_retry import RetryingRDBStorage, retry_seconds

__all__ = [
    "create_or_load_study",
    "exclusive_writer",
    "load_study",
    "open_storage",
    "redact",
    "study_names",
]


#: URL schemes that name a file, and what a user passes for each.
FILE_SCHEMES = {"sqlite": "sqlite:///runs/study.db", "journal": "journal:///runs/study.log"}


def redact(url: str, text: str | None = None) -> str:
    """``url`` with its password (``postgresql://user:secret@host/db``) shown as ``***``,
    for every message, print and stored record that names a storage; with ``text``, that
    text with the password replaced wherever it occurs (a driver's error may quote it)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not an RDB URL (journal, garbage): nothing that parses as a password
        return url if text is None else text
    secret = parsed.password
    if not secret:
        return url if text is None else text
    if text is None:
        return parsed.render_as_string(hide_password=True)
    return text.replace(url, redact(url)).replace(str(secret), "***")


def _file_path(url: str, scheme: str) -> Path | None:
    """The file of a ``scheme:///path`` URL (relative; ``scheme:////abs`` is absolute)."""
    if not url.startswith(f"{scheme}:///"):
        return None
    path = url[len(f"{scheme}:///") :]
    return None if path in ("", ":memory:") else Path(path)


def _sqlite_path(url: str) -> Path | None:
    return _file_path(url, "sqlite")


#: Storage URL schemes bitnas opens (a database URL may name its driver: postgresql+psycopg2).
SUPPORTED_SCHEMES = ("sqlite", "postgresql", "mysql", "journal")


def check_url(url: str, source: str = "") -> None:
    """Refuse a storage URL of a scheme bitnas cannot open, listing the supported ones;
    ``source`` says where the URL came from (a file's [study] storage, --storage)."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme not in SUPPORTED_SCHEMES:
        where = f" (from {source})" if source else ""
        raise StorageError(
            f"storage {url!r}{where} has an unsupported scheme {scheme!r}: use one of "
            f"{', '.join(s + '://' for s in SUPPORTED_SCHEMES)} (e.g. sqlite:///runs/study.db, "
            "journal:///runs/study.log, postgresql://user@host/db)"
        )


def _check_file(path: Path, url: str, create: bool) -> None:
    if not create and not path.exists():
        raise StorageError(f"no study storage at {path} (from {url}): run `bitnas run` first")
    if path.is_dir():
        raise StorageError(f"storage {url} names a folder, {path}; give a file path")
    parent = path.parent
    if create and not parent.exists() and path.is_absolute():
        try:
            inside = parent.resolve().is_relative_to(Path.cwd().resolve())
        except OSError:
            inside = False
        if not inside:  # a typo in an absolute path must not create folders across the disk
            raise StorageError(
                f"the folder {parent} of storage {url} does not exist: create it first "
                "(bitnas creates a missing folder only inside the working directory, "
                "such as runs/)"
            )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create the folder of storage {url}: {e}") from None
    target = path if path.exists() else path.parent
    if not os.access(target, os.W_OK):
        raise StorageError(f"storage {url} is not writable: {target} denies writing")


def open_storage(url: str, *, create: bool = True) -> optuna.storages.BaseStorage:
    """The Optuna storage for ``url``: ``journal:///path.log`` is Optuna's journal file
    storage (safe for several processes at once); anything else is an RDB URL (SQLite files
    get their folder created)."""
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(
            "storage must be a database URL (sqlite:///runs/study.db, postgresql://host/db) "
            f"or a journal file URL (journal:///runs/study.log), got {url!r}"
        )
    check_url(url)
    if url.startswith("journal:"):
        return _open_journal(url, create)
    path = _sqlite_path(url)
    if path is not None:
        _check_file(path, url, create)
        # A generous busy timeout lets readers and one writer share a SQLite file.
        return _open_rdb(url, lambda: optuna.storages.RDBStorage(
            url, engine_kwargs={"connect_args": {"timeout": 60}}), sqlite=True)  # fmt: skip
    # a database server: every call rides out a restart of the server (storage_retry.py)
    retry_s = retry_seconds()
    kwargs: dict[str, Any] = {}
    if url.split("://", 1)[0].split("+", 1)[0].lower() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 10}  # a silent host: fail, then retry
    return _open_rdb(url, lambda: RetryingRDBStorage(
        url, shown_url=redact(url), retry_s=retry_s, engine_kwargs=kwargs))  # fmt: skip


def _open_rdb(
    url: str,
    make: Callable[[], optuna.storages.RDBStorage],
    *,
    sqlite: bool = False,
) -> optuna.storages.RDBStorage:
    """``make()``, retried while another process creates the same new schema. A database
    server that does not answer here is an error at once (a wrong host or port is far more
    likely than a restart in this instant); once opened, the storage's calls ride out a
    restart (storage_retry.py)."""
    tries = 0
    while True:
        try:
            storage = make()
            if sqlite:
                _write_ahead_log(storage)
            return storage
        except Exception as e:  # SQLAlchemy raises many types; all mean the same to a user
            tries += 1
            if _schema_race(e) and tries < SCHEMA_RACE_TRIES:
                time.sleep(0.1 * tries)
                continue
            raise StorageError(
                f"cannot open storage {redact(url)}: {type(e).__name__}: {redact(url, str(e))}"
            ) from None


#: How often opening a new database is tried when another process is creating its schema.
SCHEMA_RACE_TRIES = 6


#: PostgreSQL's catalog indexes that a concurrent creation of one type or table violates.
_PG_CATALOG_INDEXES = ("pg_type_typname_nsp_index", "pg_class_relname_nsp_index")


def _schema_race(e: Exception) -> bool:
    """Whether ``e`` is what Optuna's RDBStorage raises when another process creates the same
    new database's tables at the same moment (a run starting while `optuna-dashboard` or
    `bitnas pareto` opens the file, or several runs starting at once on a new PostgreSQL
    database): a table or type that "already exists" (SQLite, MySQL, PostgreSQL), a
    unique-key violation in PostgreSQL's catalog of types or tables (its form of "already
    exists" when both create at once), or a second insert of the schema version (a
    unique-key violation on ``alembic_version``). Optuna creates the schema without a lock;
    trying again finds it made. Only the driver's own message is read (not the SQL
    statement SQLAlchemy appends), so a read-only or locked database is not mistaken for
    it. Written here because neither Optuna nor SQLAlchemy retries this."""
    import sqlalchemy.exc as sa_exc

    if not isinstance(e, sa_exc.DBAPIError):
        return False
    orig = e.orig
    if getattr(orig, "pgcode", None) in ("42P07", "42710"):  # duplicate table / object
        return True
    text = str(orig).lower()
    if isinstance(e, sa_exc.OperationalError | sa_exc.ProgrammingError):
        return "already exists" in text
    if isinstance(e, sa_exc.IntegrityError):
        # PostgreSQL: two CREATE TYPE/TABLE of one name at once collide in its catalogs
        if any(index in text for index in _PG_CATALOG_INDEXES):
            return True
        return "alembic_version" in str(e) and ("unique" in text or "duplicate" in text)
    return False


def _open_journal(url: str, create: bool) -> optuna.storages.BaseStorage:
    """Optuna's journal storage on a file: an append-only log every writer locks briefly
    (a symlink lock, which also works on NFS), so several runs can share one study."""
    from optuna.storages.journal import JournalFileBackend

    path = _file_path(url, "journal")
    if path is None:
        raise StorageError(
            f"a journal storage is a file URL such as {FILE_SCHEMES['journal']} (relative) or "
            f"journal:////abs/path/study.log (absolute), got {url!r}"
        )
    _check_file(path, url, create)
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except Exception as e:  # a log that does not replay: garbage, another format, cut short
        raise StorageError(
            f"cannot open storage {url}: {path} is not a readable Optuna journal "
            f"({type(e).__name__}: {e}); the file was left as it is"
        ) from None


@contextlib.contextmanager
def exclusive_writer(url: str) -> Iterator[None]:
    """Hold, for one run, the single writer's place on a SQLite file; a second run on the
    same file meanwhile gets a StorageError naming the storages made for several writers.

    SQLite serialises writers with a file lock and a busy timeout: two runs would contend
    for it, each seeing the other's trials only now and then. bitnas refuses that instead of
    half-supporting it. The lock is an advisory ``flock`` on ``<file>.lock``, released by the
    kernel when the run ends in any way (a ``kill -9`` included). Other URLs pass through.
    """
    path = _sqlite_path(url)
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; SQLite's own locking remains
        path = None
    if path is None:
        yield
        return
    _check_file(path, url, create=True)  # the folder exists and is writable before the lock
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StorageError(f"cannot create the lock file {lock} of storage {url}: {e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise StorageError(
                f"storage {url} is in use by another `bitnas run` ({holder}), and a SQLite "
                "file takes one run at a time. Wait for that run to end, or, for several runs "
                "on one study at once, use a journal file (--storage "
                f"{FILE_SCHEMES['journal']}) or a database server URL "
                "(--storage postgresql://user@host/db)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_ahead_log(storage: optuna.storages.RDBStorage) -> None:
    """SQLite in WAL mode with synchronous=NORMAL: a trial's dozen small commits cost half the
    time (measured 42 -> 20 ms per trial), readers (a dashboard) no longer block the writer,
    and a crash of the process loses nothing committed. (WAL needs a local disk, not NFS.)"""
    from sqlalchemy import event

    @event.listens_for(storage.engine, "connect")
    def _pragmas(conn: Any, _record: Any) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    storage.engine.dispose()  # connections opened before the listener reconnect with it


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    # names only: study summaries would read every trial of every study (slow for sweeps)
    return optuna.get_all_study_names(storage)


def load_study(storage: optuna.storages.BaseStorage, name: str, url: str = "") -> optuna.Study:
    """Load an existing study; a missing name lists the ones the storage holds."""
    names = study_names(storage)
    if name not in names:
        where = redact(url) if url else storage
        raise StorageError(f"study {name!r} is not in storage {where}; it holds {names}")
    return optuna.load_study(study_name=name, storage=storage)


def create_or_load_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    problem: Problem,
    sampler: optuna.samplers.BaseSampler,
    url: str = "",
) -> optuna.Study:
    """Continue study ``name`` if it exists (same objectives required), else create it."""
    if name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        want = [d.upper() for d in problem.directions]
        have = [d.name for d in study.directions]
        names = study.metric_names
        if have != want or (names is not None and list(names) != problem.metric_names):
            raise StorageError(
                f"study {name!r} in {redact(url) or 'the storage'} has objectives {names} "
                f"{have}, but "
                f"this study file asks for {problem.metric_names} {want}; use another study "
                "name or storage (the existing study is left untouched)"
            )
        return study
    # set_metric_names is flagged experimental in Optuna 5; the flag is noise for users.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    directions = [optuna.study.StudyDirection[d.upper()] for d in problem.directions]
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, directions=directions, sampler=sampler
        )
    except optuna.exceptions.DuplicatedStudyError:
        # another run on the same storage created it a moment ago: continue it instead
        return create_or_load_study(storage, name, problem, sampler, url)
    study.set_metric_names(problem.metric_names)
    return study
