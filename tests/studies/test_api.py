"""The Python API: the same path as the CLI, continuing studies instead of restarting."""

from __future__ import annotations

import pandas as pd
import pytest

import bitnas
from bitnas.errors import StorageError
from bitnas.search import pareto_mask
from bitnas.studies import StudySpec
from tests.conftest import SMALL_SPACE_TABLE

pytestmark = pytest.mark.slow


def spec(tmp_path, **study):
    return StudySpec.from_dict(
        {
            "study": {"name": "api", "storage": f"sqlite:///{tmp_path}/s.db", "trials": 6, **study},
            "data": {"name": "digits"},
            "space": dict(SMALL_SPACE_TABLE),
            "budget": {"bitops": 60_000},
            "train": {"epochs": 3},
        }
    )


def test_run_then_resume_adds_only_missing_trials(tmp_path):
    r = bitnas.run(spec(tmp_path), progress=False)
    assert r.added["finished"] == 6 and r.counts()["finished"] == 6
    front = r.front()
    assert isinstance(front, pd.DataFrame) and len(front) >= 1
    assert (front["bitops"] <= 60_000).all()
    assert pareto_mask(front[["val_accuracy", "bitops"]].to_numpy(), ["maximize", "minimize"]).all()
    assert front["bitops"].is_monotonic_increasing
    # the same call again: nothing to add
    again = bitnas.run(spec(tmp_path), progress=False)
    assert again.added["finished"] == 0 and again.counts() == r.counts()
    # a higher target adds exactly the difference, in the same study
    more = bitnas.run(spec(tmp_path), trials=9, progress=False)
    assert more.added["finished"] == 3 and more.counts()["finished"] == 9
    assert more.study.study_name == "api"
    opened = bitnas.open_result("api", storage=f"sqlite:///{tmp_path}/s.db")
    assert opened.front_table().equals(more.front_table())


def test_trials_another_run_finishes_while_this_one_starts_count_toward_its_target(
    tmp_path, monkeypatch
):
    # the target is the study's total: a run that counts the study, then loads its data while
    # another run sharing the study finishes trials, stops at the total, not at its first
    # count plus the difference (that overshot: 17 for 16 with 4 runs on one PostgreSQL study)
    from bitnas.evaluators.trained import TrainedEvaluator

    journal = f"journal:///{tmp_path}/s.log"  # several runs at once (SQLite takes one)
    bitnas.run(spec(tmp_path, storage=journal), progress=False)
    prepare = TrainedEvaluator.prepare
    meanwhile: list[int] = []

    def prepare_while_another_run_works(self: TrainedEvaluator) -> None:
        prepare(self)
        if not meanwhile:  # once: the run below, inside this one's start
            meanwhile.append(0)
            other = bitnas.run(spec(tmp_path, storage=journal), trials=8, progress=False)
            meanwhile.append(other.added["finished"])

    monkeypatch.setattr(TrainedEvaluator, "prepare", prepare_while_another_run_works)
    r = bitnas.run(spec(tmp_path, storage=journal), trials=9, progress=False)
    assert meanwhile == [0, 2]
    assert r.counts()["finished"] == 9
    assert r.added["finished"] == 1


def test_resume_does_not_replay_the_first_proposals(tmp_path):
    first = bitnas.run(spec(tmp_path, sampler="random"), progress=False)
    keys = [t.user_attrs["arch_key"] for t in first.study.trials]
    more = bitnas.run(spec(tmp_path, sampler="random"), trials=12, progress=False)
    new = [t.user_attrs["arch_key"] for t in more.study.trials[len(keys) :]]
    assert new[: len(keys)] != keys[: len(new)]


def test_existing_study_with_other_objectives_is_refused(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(storage=url, study_name="api", direction="minimize")
    with pytest.raises(StorageError, match=r"has objectives .* left untouched"):
        bitnas.run(spec(tmp_path), progress=False)
    assert len(optuna.load_study(study_name="api", storage=url).trials) == 0


def test_open_missing_study_lists_names(tmp_path):
    bitnas.run(spec(tmp_path, trials=1), progress=False)
    with pytest.raises(StorageError, match=r"study 'nope' is not in storage .* it holds \['api'\]"):
        bitnas.open_result("nope", storage=f"sqlite:///{tmp_path}/s.db")
    with pytest.raises(StorageError, match="no study storage at"):
        bitnas.open_result("api", storage=f"sqlite:///{tmp_path}/missing.db")


def test_changed_measurement_settings_are_refused_on_resume(tmp_path):
    import dataclasses

    from bitnas.spaces import Budget

    first = bitnas.run(spec(tmp_path, trials=2), progress=False)
    stored = first.study.user_attrs["bitnas_spec"]
    assert stored["budget"] == {"bitops": 60_000} and stored["train"]["epochs"] == 3
    tighter = dataclasses.replace(spec(tmp_path, trials=4), budget=Budget(20_000))
    with pytest.raises(StorageError, match=r"\[budget\] bitops: 60000 -> 20000"):
        bitnas.run(tighter, progress=False)
    with pytest.raises(StorageError, match=r"\[study\] seed: 0 -> 5"):
        bitnas.run(spec(tmp_path, trials=4), seed=5, progress=False)
    # the study is untouched, and sampler/target changes are fine
    assert bitnas.open_result("api", storage=f"sqlite:///{tmp_path}/s.db").counts()["finished"] == 2
    assert (
        bitnas.run(spec(tmp_path, trials=3, sampler="random"), progress=False).added["finished"]
        == 1
    )


def test_pareto_of_a_foreign_single_objective_study_is_refused(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path}/one.db"
    optuna.create_study(storage=url, study_name="one").optimize(
        lambda t: t.suggest_float("x", 0, 1), 2
    )
    with pytest.raises(StorageError, match="has 1 objective"):
        bitnas.open_result("one", storage=url)
