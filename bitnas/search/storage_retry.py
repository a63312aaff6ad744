"""Riding out a database server that restarts: every storage call retried with a bounded
backoff while the server does not answer, then a clear error.

Optuna's RDBStorage opens one SQLAlchemy session per call and gives up at the first error; a
PostgreSQL or MySQL server restarted under a study of several days (an upgrade, a failover)
would end every run on it. ``RetryingRDBStorage`` is an RDBStorage (so Optuna still puts its
cache over it) whose calls that reach the server are retried when the server is unreachable
or dropped the connection: SQLAlchemy throws the dead pool's connections away on such an
error, the next try connects again. Backoff doubles from 0.1 s to 5 s; after
``BITNAS_DB_RETRY_S`` seconds (default 300) without an answer the call raises a
``StorageError`` saying so, and every later call fails at once until the server answers.
Opening a storage is not retried: a server that never answered is most likely a wrong host
or port, and says so at once.

Writes are retried whole, in a transaction of their own. A write whose commit reached the
server just as the connection broke is found done on retry: a trial's final state (the retry
meets a finished trial; the same state is taken as success), an attribute (written again,
same value). Two rare cases are left: a new trial created just as the connection broke is
created again, and the first copy stays RUNNING without an owner until a run closes it
(``coordination.close_abandoned``, after ``ORPHAN_AFTER_S``); a waiting trial taken just as the
connection broke is left to that same rule.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from bitnas.errors import StorageError

__all__ = ["RETRY_ENV", "RetryingRDBStorage", "retry_seconds"]

#: Seconds a storage call keeps retrying an unreachable database server (0: no retries).
RETRY_ENV = "BITNAS_DB_RETRY_S"
DEFAULT_RETRY_S = 300.0
FIRST_DELAY_S, MAX_DELAY_S = 0.1, 5.0

_log = logging.getLogger("bitnas.storage")
F = TypeVar("F", bound=Callable[..., Any])


def retry_seconds() -> float:
    """The bound from ``BITNAS_DB_RETRY_S``; a value that is not a number >= 0 is refused."""
    raw = os.environ.get(RETRY_ENV, "")
    if not raw.strip():
        return DEFAULT_RETRY_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise StorageError(
            f"{RETRY_ENV} must be a number of seconds >= 0 (how long a run waits for an "
            f"unreachable database server), got {raw!r}"
        )
    return value


def disconnected(e: BaseException) -> bool:
    """Whether ``e`` says the server did not answer or dropped the connection (not that the
    statement or its data was wrong): SQLAlchemy's OperationalError, InterfaceError or a
    disconnect, raised bare, wrapped in Optuna's StorageInternalError, or behind the error
    it caused (Optuna's fallback query in the same session then meets SQLAlchemy's
    PendingRollbackError)."""
    import sqlalchemy.exc as sa_exc

    kinds = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)
    seen: set[int] = set()
    link: BaseException | None = e
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, kinds) or (
            isinstance(link, sa_exc.DBAPIError) and link.connection_invalidated
        ):
            return True
        if not isinstance(
            link, optuna.exceptions.StorageInternalError | sa_exc.PendingRollbackError
        ):
            return False
        link = link.__cause__ or link.__context__
    return False


class RetryingRDBStorage(RDBStorage):
    """An RDBStorage whose server calls survive a restart of the server (module docstring).
    ``shown_url`` is the URL as messages may show it (its password hidden)."""

    def __init__(self, url: str, *, shown_url: str, retry_s: float, **kwargs: Any) -> None:
        self._shown = shown_url
        self._retry_s = retry_s
        self._down_since: float | None = None
        self._local = threading.local()
        super().__init__(url, **kwargs)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state.pop("_local", None)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._local = threading.local()

    def _call(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if getattr(self._local, "inside", False):  # a call inside a retried call: one bound
            return fn(self, *args, **kwargs)
        self._local.inside = True
        tries, failed = 0, False
        try:
            while True:
                try:
                    out = fn(self, *args, **kwargs)
                except optuna.exceptions.UpdateFinishedTrialError:
                    if failed and name == "set_trial_state_values" and self._landed(*args):
                        out = True  # the try that lost its connection had committed it
                    else:
                        raise
                except Exception as e:
                    if not disconnected(e):
                        raise
                    failed = True
                    tries += 1
                    self._wait(e, tries)
                    continue
                if self._down_since is not None:
                    _log.warning(
                        "bitnas: the database server of %s answers again (after %.1f s)",
                        self._shown, time.monotonic() - self._down_since,
                    )  # fmt: skip
                self._down_since = None
                return out
        finally:
            self._local.inside = False

    def _landed(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        t = RDBStorage.get_trial(self, trial_id)
        same = values is None or (t.values is not None and list(t.values) == list(values))
        return t.state == state and same

    def _wait(self, e: BaseException, tries: int) -> None:
        """Sleep before the next try, or raise once the server has been gone too long."""
        from bitnas.search.storage import redact

        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            _log.warning(
                "bitnas: the database server of %s does not answer (%s); retrying for up to "
                "%g s (%s)", self._shown, type(e.__cause__ or e).__name__, self._retry_s,
                RETRY_ENV,
            )  # fmt: skip
        waited = now - self._down_since
        if waited >= self._retry_s:
            cause = e.__cause__ or e
            text = redact(self.url, f"{type(cause).__name__}: {cause}").splitlines()[0]
            raise StorageError(
                f"the database server of storage {self._shown} did not answer for "
                f"{waited:.0f} s (the bound: {self._retry_s:g} s; {tries} tries; last: "
                f"{text}); the run stops. The trials it "
                "held stay RUNNING until the next `bitnas run` on the study closes them "
                f"(abandoned) and trains their architectures again. Set {RETRY_ENV} to wait "
                "longer"
            ) from None
        delay = min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (tries - 1)) * random.uniform(0.8, 1.2)
        time.sleep(min(delay, max(0.0, self._retry_s - waited)) + 0.01)


def _retrying(name: str) -> Callable[..., Any]:
    fn = getattr(RDBStorage, name)

    @functools.wraps(fn)
    def call(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, fn, *args, **kwargs)

    return call


#: RDBStorage's calls that reach the server: every call of Optuna's storage API and the
#: private ones Optuna's cache over it makes.
_SERVER_CALLS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
    "get_study_user_attrs", "get_study_system_attrs", "get_trial_user_attrs",
    "get_trial_system_attrs", "get_all_studies", "create_new_trial", "_create_new_trial",
    "set_trial_param", "_set_trial_param", "get_trial_param", "set_trial_state_values",
    "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials", "_get_trials",
    "get_best_trial", "_get_best_trial_id", "record_heartbeat", "_get_stale_trial_ids",
)  # fmt: skip

for _name in _SERVER_CALLS:
    setattr(RetryingRDBStorage, _name, _retrying(_name))
