"""RetryingRDBStorage without a server: what it retries, what it takes as done, its bound."""

from __future__ import annotations

import time

import optuna
import pytest
import sqlalchemy.exc as sa_exc
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from bitnas.errors import StorageError
from bitnas.search.storage_retry import RETRY_ENV, RetryingRDBStorage, disconnected


def gone() -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))


@pytest.fixture
def storage(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"  # the wrapper does not care which database is behind
    return RetryingRDBStorage(url, shown_url="db://u:***@h/x", retry_s=1.0)


def new_trial(storage):
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    return study, study.ask()


def test_a_final_state_that_landed_as_the_connection_broke_is_taken_as_done(storage, caplog):
    _, trial = new_trial(storage)
    calls = []

    def commit_then_break(self, *args):
        calls.append(args)
        if len(calls) == 1:
            RDBStorage.set_trial_state_values(self, *args)  # the commit reaches the server
            raise optuna.exceptions.StorageInternalError("commit") from gone()
        return RDBStorage.set_trial_state_values(self, *args)  # meets a finished trial

    args = (trial._trial_id, TrialState.COMPLETE, [0.9, 100.0])
    assert storage._call("set_trial_state_values", commit_then_break, *args) is True
    assert len(calls) == 2
    t = storage.get_trial(trial._trial_id)
    assert t.state == TrialState.COMPLETE and t.values == [0.9, 100.0]
    assert "does not answer" in caplog.text and "answers again" in caplog.text
    # another process finishing the trial meanwhile, in another state, is not success
    _, trial = new_trial(storage)
    calls.clear()

    def others_finish_it_then_break(self, *args):
        calls.append(args)
        if len(calls) == 1:
            RDBStorage.set_trial_state_values(self, args[0], TrialState.COMPLETE, [0.5, 1.0])
            raise optuna.exceptions.StorageInternalError("commit") from gone()
        return RDBStorage.set_trial_state_values(self, *args)

    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage._call("set_trial_state_values", others_finish_it_then_break,
                      trial._trial_id, TrialState.FAIL, None)  # fmt: skip
    assert len(calls) == 2


def test_errors_of_the_data_are_not_retried(storage):
    calls = []

    def bad(self):
        calls.append(1)
        raise sa_exc.IntegrityError("INSERT", {}, Exception("unique"))

    with pytest.raises(sa_exc.IntegrityError):
        storage._call("get_all_studies", bad)
    assert calls == [1]
    assert not disconnected(ValueError("x")) and disconnected(gone())


def test_a_server_gone_past_the_bound_is_a_storage_error_then_at_once(storage):
    def down(self):
        raise optuna.exceptions.StorageInternalError("commit") from gone()

    t0 = time.monotonic()
    with pytest.raises(StorageError) as e:
        storage._call("get_all_studies", down)
    took = time.monotonic() - t0
    assert 1.0 <= took < 3.0
    assert "db://u:***@h/x did not answer for 1 s (the bound: 1 s;" in str(e.value)
    assert "closes them (abandoned)" in str(e.value) and RETRY_ENV in str(e.value)
    t0 = time.monotonic()
    with pytest.raises(StorageError):  # still down: no second wait
        storage._call("get_all_studies", down)
    assert time.monotonic() - t0 < 0.5
    assert storage._call("get_all_studies", RDBStorage.get_all_studies) == []  # back
