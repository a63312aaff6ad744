"""The one-read loader of a database study's trials (bitnas/search/rdb_read.py) against
Optuna's own ORM read: equal trials, the same cache bookkeeping, used by ``open_result``."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from bitnas.search.rdb_read import preload, read_trials
from bitnas.search.storage import open_storage

DISTS = {
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "width": IntDistribution(16, 128, step=16),
    "act": CategoricalDistribution(["relu", "gelu", None]),
    "drop": FloatDistribution(0.0, 0.5),
}


def _fill(study: optuna.Study) -> None:
    """Trials of every kind a bitnas study holds: two objectives (infinities included),
    every distribution, nested user attributes, system attributes, intermediate values,
    and unfinished trials (running, waiting)."""
    for i in range(12):
        state = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL][i % 3]
        values = None if state == TrialState.FAIL else [0.5 + i / 100, 1000.0 * (i + 1)]
        if i == 4:
            values = [-math.inf, math.inf]
        study.add_trial(
            create_trial(
                state=state,
                values=values,
                params={"lr": 10 ** -(1 + i % 3), "width": 16 * (1 + i % 8),
                        "act": ["relu", "gelu", None][i % 3], "drop": i / 40},
                distributions=DISTS,
                user_attrs={"arch_key": f"k{i}", "cost": {"macs": [i, 2 * i], "bitops": i},
                            "summary": f"mlp {i}", "none": None},
                system_attrs={"constraints": [float(i - 6)], "nsga": [1, 2]},
                intermediate_values={0: 0.1 * i, 1: math.inf} if i % 4 == 0 else {},
            )
        )  # fmt: skip
    study.enqueue_trial({"lr": 0.01, "width": 32, "act": "relu", "drop": 0.1})  # WAITING
    running = study.ask()  # the enqueued one, now RUNNING
    running.set_user_attr("arch_key", "running")
    study.enqueue_trial({"lr": 0.02, "width": 48, "act": "gelu", "drop": 0.2})  # WAITING


@pytest.fixture
def url(tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(
        storage=open_storage(url), study_name="s", directions=["maximize", "minimize"]
    )
    _fill(study)
    other = optuna.create_study(storage=study._storage, study_name="other")
    other.add_trial(create_trial(value=1.0))  # another study's trials stay out
    return url


def _fresh(url: str) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=open_storage(url, create=False))


def test_one_read_equals_optunas_orm_read(url):  # type: ignore[no-untyped-def]
    study = _fresh(url)
    backend = study._storage._backend
    mine = read_trials(backend, study._study_id)
    theirs = backend.get_all_trials(study._study_id, deepcopy=False)
    assert len(mine) == 14
    assert mine == theirs  # FrozenTrial equality: every field
    for a, b in zip(mine, theirs, strict=True):
        assert a._trial_id == b._trial_id and a.distributions == b.distributions
        assert a.datetime_start == b.datetime_start


def test_preload_fills_the_cache_as_optunas_first_read(url):  # type: ignore[no-untyped-def]
    reference = _fresh(url)
    expect = reference.get_trials(deepcopy=False)
    ref_info = reference._storage._studies[reference._study_id]

    study = _fresh(url)
    assert preload(study) is True
    info = study._storage._studies[study._study_id]
    assert len(info.trials) == 14  # in the cache before any get_trials
    assert info.last_finished_trial_id == ref_info.last_finished_trial_id
    assert info.unfinished_trial_ids == ref_info.unfinished_trial_ids
    assert study.get_trials(deepcopy=False) == expect
    assert preload(study) is False  # a cache that holds the study is left alone

    # an unfinished trial that ends after the read is read again, as Optuna's cache does
    running = next(t for t in expect if t.state == TrialState.RUNNING)
    writer = _fresh(url)
    writer.tell(running.number, [0.7, 5.0])
    now = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert now[running.number].state == TrialState.COMPLETE
    assert now[running.number].values == [0.7, 5.0]


def test_preload_leaves_a_journal_alone(tmp_path):  # type: ignore[no-untyped-def]
    study = optuna.create_study(storage=open_storage(f"journal:///{tmp_path}/s.log"))
    study.add_trial(create_trial(value=1.0))
    assert preload(study) is False
    assert len(study.get_trials(deepcopy=False)) == 1


def test_open_result_reads_a_database_study_in_one_read(url, monkeypatch):  # type: ignore[no-untyped-def]
    # Optuna's ORM read of the whole study (trial_id_greater_than=-1) is what the loader
    # replaces; after open_result only the unfinished trials are read through it
    from optuna.storages import RDBStorage

    from bitnas.search import counts
    from bitnas.studies.api import open_result

    expect = counts(_fresh(url).get_trials(deepcopy=False))
    calls = []
    real = RDBStorage._get_trials

    def spy(self, study_id, states, included_trial_ids, trial_id_greater_than):  # type: ignore[no-untyped-def]
        calls.append(trial_id_greater_than)
        return real(self, study_id, states, included_trial_ids, trial_id_greater_than)

    monkeypatch.setattr(RDBStorage, "_get_trials", spy)
    result = open_result("s", storage=url)
    assert len(result.study.get_trials(deepcopy=False)) == 14
    assert result.counts() == expect
    assert -1 not in calls, calls
