"""bitnas/search/attr_writes.py: a trial's attributes in one round trip, read back exactly as
Optuna's one-call-per-attribute writes leave them, on every storage."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy.event
import sqlalchemy.exc as sa_exc
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from bitnas.search import attr_writes
from bitnas.search.attr_writes import set_trial_attrs, write_attrs
from bitnas.search.storage import open_storage
from bitnas.search.storage_retry import RetryingRDBStorage

#: JSON values of every shape a bitnas trial stores, and a key written before (an update)
USER = {
    "arch": '{"family": "mlp", "widths": [64, 32]}',
    "widths": [64, 32],
    "cost": {"bitops": 1.5e6, "layers": [{"name": "fc0", "bitops": 1e6}]},
    "depth": 2,
    "feasible": True,
    "energy_pj": 0.125,
    "note": "naïve — ünïcode",
    "nothing": None,
    "owner": "host:123",
}
SYSTEM = {"constraints:bitops_over_budget": -2.5, "constraints": [-2.5]}


def storages(tmp_path):
    yield "sqlite", open_storage(f"sqlite:///{tmp_path}/a.db")
    yield "journal", open_storage(f"journal:///{tmp_path}/a.log")
    yield "memory", optuna.storages.InMemoryStorage()


@pytest.mark.parametrize("kind", ["sqlite", "journal", "memory"])
def test_a_batch_reads_back_as_one_call_per_attribute(tmp_path, kind):
    storage = dict(storages(tmp_path))[kind]
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    one, batch = study.ask(), study.ask()
    for t in (one, batch):
        t.set_user_attr("owner", "someone else")  # overwritten below: the upsert path
    for k, v in USER.items():
        one.set_user_attr(k, v)
    for k, v in SYSTEM.items():
        storage.set_trial_system_attr(one._trial_id, k, v)
    set_trial_attrs(batch, USER, SYSTEM)
    assert batch.user_attrs == one.user_attrs == USER  # the trial's own view, updated too
    fresh = optuna.load_study(study_name=study.study_name, storage=storage)
    a, b = (fresh._storage.get_trial(t._trial_id) for t in (one, batch))
    assert b.user_attrs == a.user_attrs == USER
    assert b.system_attrs == a.system_attrs
    assert b.constraints == a.constraints == {"0": -2.5, "bitops_over_budget": -2.5}


def test_a_batch_is_one_commit_on_sqlite(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/c.db")
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    trial = study.ask()
    trial.set_user_attr("owner", "someone else")  # the batch updates it: the upsert, one commit
    commits = []
    engine = storage.engine
    sqlalchemy.event.listen(engine, "commit", lambda conn: commits.append(1))
    set_trial_attrs(trial, USER, SYSTEM)
    assert len(commits) == 1
    assert storage.get_trial(trial._trial_id).user_attrs == USER  # a read: a commit too
    before = len(commits)
    for k, v in USER.items():
        trial.set_user_attr(k, v)
    assert len(commits) - before == len(USER)  # what it replaces


def test_a_batch_is_one_append_on_a_journal(tmp_path, monkeypatch):
    storage = open_storage(f"journal:///{tmp_path}/j.log")
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    trial = study.ask()
    appends = []
    real = JournalFileBackend.append_logs
    monkeypatch.setattr(
        JournalFileBackend, "append_logs", lambda self, logs: (appends.append(len(logs)),
                                                                real(self, logs))[1]
    )  # fmt: skip
    set_trial_attrs(trial, USER, SYSTEM)
    assert appends == [len(USER) + len(SYSTEM)]
    # a second process replaying the journal from the start reads the same trial
    other = optuna.storages.JournalStorage(JournalFileBackend(f"{tmp_path}/j.log"))
    assert other.get_trial(trial._trial_id).user_attrs == USER


@pytest.mark.parametrize("kind", ["sqlite", "journal", "memory"])
def test_a_finished_trial_refuses_the_batch_and_keeps_what_it_had(tmp_path, kind):
    storage = dict(storages(tmp_path))[kind]
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    trial = study.ask()
    trial.set_user_attr("owner", "me")
    study.tell(trial, [0.5, 10.0])
    size = (tmp_path / "a.log").stat().st_size if kind == "journal" else None
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        write_attrs(storage, trial._trial_id, USER, SYSTEM)
    t = storage.get_trial(trial._trial_id)
    assert t.user_attrs == {"owner": "me"} and "constraints" not in t.system_attrs
    if kind == "journal":  # refused before anything was appended
        assert (tmp_path / "a.log").stat().st_size == size


def test_a_batch_whose_connection_broke_is_retried_whole(tmp_path):
    storage = RetryingRDBStorage(f"sqlite:///{tmp_path}/r.db", shown_url="db", retry_s=5.0)
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    trial = study.ask()
    tries = []
    real = attr_writes._upsert

    def break_once(rdb, session, model, trial_id, attrs):  # type: ignore[no-untyped-def]
        real(rdb, session, model, trial_id, attrs)  # written, not committed
        tries.append(1)
        if len(tries) == 1:
            raise sa_exc.OperationalError("INSERT", {}, Exception("server closed the connection"))

    attr_writes._upsert = break_once
    try:
        write_attrs(storage, trial._trial_id, USER, SYSTEM)
    finally:
        attr_writes._upsert = real
    assert len(tries) == 3  # user, broken; then user and system again, in a new transaction
    t = storage.get_trial(trial._trial_id)
    assert t.user_attrs == USER and t.system_attrs == SYSTEM


def test_an_integrity_error_falls_back_to_one_write_per_attribute(tmp_path, monkeypatch):
    storage = open_storage(f"sqlite:///{tmp_path}/i.db")
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    trial = study.ask()

    def clash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise sa_exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))

    monkeypatch.setattr(attr_writes, "_upsert", clash)
    per_key = []
    real = RDBStorage.set_trial_user_attr
    monkeypatch.setattr(RDBStorage, "set_trial_user_attr",
                        lambda self, *a: (per_key.append(a[1]), real(self, *a))[1])  # fmt: skip
    write_attrs(storage, trial._trial_id, USER)
    assert per_key == list(USER)
    assert storage.get_trial(trial._trial_id).user_attrs == USER


def test_a_proposal_records_its_architecture_in_one_write(tmp_path, monkeypatch):
    """What ``propose`` leaves on a trial: the owner (alone, first), then one batch with the
    architecture, its cost, feasibility and constraint; the constraint as Optuna 5's
    ``set_constraint`` records it."""
    from bitnas.evaluators import CallableEvaluator, EvalResult
    from bitnas.search import Problem
    from bitnas.search.trials import propose
    from bitnas.spaces import Budget, MLPSpace

    space = MLPSpace(input_shape=(64,), num_classes=10, depth=(1, 2), width=(16, 32),
                     wbits=(2, 8), abits=(1, 4), timesteps=(1, 2))  # fmt: skip
    evaluator = CallableEvaluator(lambda a, **k: EvalResult(metrics={"val_accuracy": 0.5}))
    problem = Problem(space=space, evaluator=evaluator, budget=Budget(bitops=1e12))
    storage = open_storage(f"sqlite:///{tmp_path}/p.db")
    study = optuna.create_study(storage=storage, directions=problem.directions)
    batches = []
    real = attr_writes.write_attrs
    monkeypatch.setattr(attr_writes, "write_attrs",
                        lambda *a: (batches.append(a), real(*a))[1])  # fmt: skip
    p = propose(study, problem, attrs={"backend": "ray"})
    assert len(batches) == 1
    _, trial_id, user, system = batches[0]
    assert set(system) == {f"constraints:{Budget.CONSTRAINT}", "constraints"}
    assert {"architecture", "arch_key", "cost", "feasible", "widths", "backend"} <= set(user)
    t = storage.get_trial(trial_id)
    assert t.state == TrialState.RUNNING and t.user_attrs["owner"]
    assert t.user_attrs["backend"] == "ray" and t.user_attrs["feasible"] is True
    excess = problem.budget.excess(p.cost)
    assert t.constraints == {"0": excess, Budget.CONSTRAINT: excess}
    twin = study.ask()
    twin.set_constraint(Budget.CONSTRAINT, excess)
    assert (
        storage.get_trial(twin._trial_id).system_attrs[f"constraints:{Budget.CONSTRAINT}"]
        == (t.system_attrs[f"constraints:{Budget.CONSTRAINT}"])
    )


def test_a_journal_trial_finished_between_check_and_append_does_not_poison_later_reads(
    tmp_path, monkeypatch
):
    storage = open_storage(f"journal:///{tmp_path}/race.log")
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    trial = study.ask()
    study.tell(trial, [0.5, 10.0])
    # the check passes (as it would just before another run finished the trial)
    monkeypatch.setattr(type(storage), "check_trial_is_updatable", lambda *a: None)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        write_attrs(storage, trial._trial_id, USER, SYSTEM)
    monkeypatch.undo()
    # every record was replayed (and refused) at once: later reads do not meet them again
    assert storage.get_trial(trial._trial_id).user_attrs == {}
    assert len(study.get_trials()) == 1
    study.ask()


def test_a_nan_cost_stops_the_run_with_a_clear_error_and_closes_the_trial(tmp_path):
    from bitnas.errors import BudgetError
    from bitnas.evaluators import CallableEvaluator, EvalResult
    from bitnas.search import Problem
    from bitnas.search.trials import propose
    from bitnas.spaces import MLPSpace

    space = MLPSpace(input_shape=(64,), num_classes=10, depth=(1, 1), width=(16,), wbits=(2,),
                     abits=(1,), timesteps=(1,))  # fmt: skip
    evaluator = CallableEvaluator(lambda a, **k: EvalResult(metrics={"val_accuracy": 0.5}))
    problem = Problem(space=space, evaluator=evaluator, cost=lambda a: float("nan"))
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/n.db"),
                                directions=problem.directions)  # fmt: skip
    with pytest.raises(BudgetError, match="returned NaN"):
        propose(study, problem)
    (t,) = study.get_trials()
    assert t.state == TrialState.FAIL and "NaN" in t.user_attrs["error"]
