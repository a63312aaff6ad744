"""Warm start: an earlier study's feasible front becomes the first trials of a new study;
architectures this space cannot build, over this budget or already held are skipped."""

from __future__ import annotations

import math
import tomllib

import optuna
import pytest
from optuna.trial import TrialState

from bitnas.errors import StorageError
from bitnas.search import front_trials
from bitnas.search.warm_start import ATTR_WARM_START, enqueue_front
from bitnas.spaces import Architecture, bitops
from bitnas.studies.api import run
from bitnas.studies.spec import StudySpec
from tests.conftest import small_study_toml, write_curve_table


def accuracy_curve(arch: Architecture) -> list[float]:
    """Accuracy grows with cost, so every trained architecture is on the front."""
    acc = 0.1 + 0.04 * math.log2(bitops(arch))
    return [acc * (1 - 0.5**e) for e in range(1, 5)]


def study_file(tmp_path, name, *, bitops_budget, trials=12):
    text = (
        small_study_toml(
            name,
            bitops=bitops_budget,
            epochs=1,
            storage=f"sqlite:///{tmp_path}/ws.db",
            study_extra='sampler = "random"\n',
        )
        + '[table]\npath = "t.parquet"\n'
    )
    text = text.replace("trials = 5\n", f"trials = {trials}\n")
    f = tmp_path / f"{name}.toml"
    f.write_text(text)
    return f


@pytest.fixture
def first(tmp_path, monkeypatch):
    """A first study, big budget: its front spans cheap and dear architectures."""
    monkeypatch.chdir(tmp_path)
    f = study_file(tmp_path, "first", bitops_budget="1e9", trials=20)
    spec = StudySpec.from_dict(tomllib.loads(f.read_text()))
    write_curve_table(tmp_path / "t.parquet", spec.space, accuracy_curve)
    result = run(f, progress=False)
    front = front_trials(result.study)
    assert len(front) >= 4
    return result, front


def test_front_of_the_first_study_is_trained_first_over_budget_skipped(tmp_path, first):
    _, front = first
    costs = sorted(t.values[1] for t in front)
    budget = costs[len(costs) // 2]  # about half the front is over this budget
    f = study_file(tmp_path, "second", bitops_budget=str(budget), trials=15)
    result = run(f, warm_start="first", progress=False)
    ws = result.warm_start
    fits = [t for t in front if t.values[1] <= budget]
    assert ws is not None and ws.front == len(front)
    assert ws.enqueued == len(fits) and ws.over_budget == len(front) - len(fits)
    assert ws.invalid == ws.present == 0
    trials = result.study.get_trials()
    head = trials[: len(fits)]
    assert [t.user_attrs["arch_key"] for t in head] == [t.user_attrs["arch_key"] for t in fits]
    assert all(t.state == TrialState.COMPLETE for t in head)
    assert [t.user_attrs[ATTR_WARM_START] for t in head] == [f"first#{t.number}" for t in fits]
    trained = [t for t in trials if t.state == TrialState.COMPLETE]
    assert all(
        bitops(Architecture.from_json(t.user_attrs["architecture"])) <= budget for t in trained
    )
    assert "warm start from 'first': enqueued" in ws.describe()
    assert f"{ws.over_budget} over this budget" in ws.describe()
    # warm-starting again finds the front already in this study: nothing is enqueued
    again = run(f, trials=20, warm_start="first", progress=False)
    assert again.warm_start is not None and again.warm_start.enqueued == 0
    assert again.warm_start.present == len(fits)


def test_architectures_this_space_cannot_build_are_skipped(tmp_path, first):
    _, front = first
    # a space without 32-wide layers cannot rebuild the front's 32-wide architectures
    f = study_file(tmp_path, "narrow", bitops_budget="1e9", trials=10)
    f.write_text(f.read_text().replace("width = [16, 32]", "width = [16]"))
    result = run(f, warm_start=tmp_path / "first.toml", progress=False)
    wide = [t for t in front if 32 in t.user_attrs["widths"]]
    ws = result.warm_start
    assert ws is not None and wide and ws.invalid == len(wide)
    assert ws.enqueued == len(front) - len(wide)
    head = result.study.get_trials()[: ws.enqueued]
    assert all(ATTR_WARM_START in t.user_attrs for t in head)
    assert all(32 not in t.user_attrs["widths"] for t in result.study.get_trials())


def test_enqueue_respects_the_room_left_and_a_missing_study_is_an_error(tmp_path, first):
    result, front = first
    target = optuna.create_study(directions=["maximize", "minimize"])
    spec = StudySpec.from_dict(tomllib.loads((tmp_path / "first.toml").read_text()))
    ws = enqueue_front(target, spec.problem(), result.study, limit=2)
    assert ws.enqueued == 2 and ws.no_room == len(front) - 2
    waiting = target.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs[ATTR_WARM_START] for t in waiting] == [
        f"first#{t.number}" for t in front[:2]
    ]
    f = study_file(tmp_path, "third", bitops_budget="1e9", trials=3)
    with pytest.raises(StorageError, match="'nope' is not in storage"):
        run(f, warm_start="nope", progress=False)
