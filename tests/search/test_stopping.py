"""The Pareto early stopper: decisions on hand-made curves, its settings, and whole studies
where dominated trials end PRUNED with fewer epochs and their curves stored."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from bitnas.errors import RegistryError, SpecError
from bitnas.evaluators.table import TableEvaluator
from bitnas.search import Problem, counts, front_trials, make_sampler, optimize
from bitnas.search.repeats import is_repeat
from bitnas.search.stopping import (
    NoStopper,
    ParetoStopper,
    Reference,
    make_stopper,
    references,
    trial_curve,
)
from bitnas.search.trials import (
    ATTR_STOPPED,
    FALLBACK_AFTER,
    Proposal,
    _feasible_draw,
    wait_for_twin,
)
from bitnas.spaces import Architecture, Budget
from bitnas.studies.api import run
from bitnas.studies.spec import StudySpec
from tests.conftest import small_space, small_study_toml, write_curve_table

CHEAP_GOOD = (0.50, 0.70, 0.80, 0.85, 0.90, 0.92)
REFS = [Reference(10.0, CHEAP_GOOD), Reference(20.0, tuple(v - 0.01 for v in CHEAP_GOOD))]


# -- decisions on hand-made curves ------------------------------------------------------------


def test_stops_a_trial_dominated_by_cheaper_completed_trials():
    s = ParetoStopper(min_epochs=3, margin=0.03, min_dominating=2)
    why = s.stop_reason(3, [0.20, 0.40, 0.50], cost=30.0, completed=REFS)
    assert why is not None and "epoch 3" in why and "2 completed" in why


def test_never_stops_a_trial_that_is_not_dominated():
    s = ParetoStopper(min_epochs=1, margin=0.0, min_dominating=1)
    # far behind, but cheaper than every completed trial: it may still be on the front
    assert s.stop_reason(3, [0.1, 0.1, 0.1], cost=5.0, completed=REFS) is None
    # as costly, but ahead at this epoch
    assert s.stop_reason(3, [0.6, 0.75, 0.81], cost=30.0, completed=REFS) is None


def test_compares_at_the_same_epoch_with_the_trials_best_so_far():
    s = ParetoStopper(min_epochs=1, margin=0.03, min_dominating=2)
    # at epoch 2 the completed trials were at 0.70/0.69: a trial at 0.68 is not far behind,
    # though it is far below their final 0.92
    assert s.stop_reason(2, [0.5, 0.68], cost=30.0, completed=REFS) is None
    # a dip at epoch 3 does not count against a trial that already reached 0.79
    assert s.stop_reason(3, [0.5, 0.79, 0.3], cost=30.0, completed=REFS) is None
    assert s.stop_reason(3, [0.5, 0.6, 0.3], cost=30.0, completed=REFS) is not None


def test_respects_min_epochs_margin_min_dominating_and_cost():
    behind = [0.45, 0.65, 0.76]  # 0.04 and 0.03 behind the two references at epoch 3
    base = dict(min_epochs=3, margin=0.03, min_dominating=2)
    assert ParetoStopper(**base).stop_reason(3, behind, 30.0, REFS) is not None
    assert ParetoStopper(**{**base, "min_epochs": 4}).stop_reason(3, behind, 30.0, REFS) is None
    assert ParetoStopper(**{**base, "margin": 0.035}).stop_reason(3, behind, 30.0, REFS) is None
    assert ParetoStopper(**{**base, "min_dominating": 3}).stop_reason(3, behind, 30.0, REFS) is None
    # only the cost-10 reference is no dearer than a cost-15 trial: one is not enough
    assert ParetoStopper(**base).stop_reason(3, behind, 15.0, REFS) is None
    assert ParetoStopper(**{**base, "min_dominating": 1}).stop_reason(3, behind, 15.0, REFS)


def test_headroom_spares_a_trial_that_could_still_catch_up():
    # a dear completed trial that started slowly and gained 0.75 after epoch 2: trials can
    # gain that much, so a trial 0.05 behind the cheap references at epoch 2 may still end
    # level with them; with headroom it is spared, without it is stopped
    refs = [*REFS, Reference(100.0, (0.1, 0.2, 0.4, 0.6, 0.8, 0.95))]
    behind = [0.45, 0.65]
    plain = ParetoStopper(min_epochs=2, margin=0.03, min_dominating=1, headroom=0.0)
    room = ParetoStopper(min_epochs=2, margin=0.03, min_dominating=1, headroom=0.9)
    assert plain.stop_reason(2, behind, 30.0, refs) is not None
    assert room.stop_reason(2, behind, 30.0, refs) is None
    # so far behind that even that gain leaves it dominated: stopped either way
    assert room.stop_reason(2, [0.05, 0.10], 30.0, refs) is not None


def test_never_stops_at_the_last_epoch_nor_without_references():
    s = ParetoStopper(min_epochs=1, margin=0.0, min_dominating=1)
    assert s.stop_reason(6, [0.1] * 6, 30.0, REFS) is None  # nothing left to save
    assert s.stop_reason(5, [0.1] * 5, 30.0, REFS) is not None
    assert s.stop_reason(3, [0.1] * 3, 30.0, []) is None
    assert NoStopper().stop_reason(3, [0.0] * 3, 1e9, REFS) is None


def test_settings_are_validated_with_the_field_named():
    with pytest.raises(SpecError, match=r"`margin` must be a number in \[0, 1\).*1.5"):
        ParetoStopper(margin=1.5)
    with pytest.raises(SpecError, match=r"`min_epochs` must be an integer >= 1, got 0"):
        ParetoStopper(min_epochs=0)
    with pytest.raises(SpecError, match=r"`min_dominating`.*True"):
        ParetoStopper(min_dominating=True)
    with pytest.raises(SpecError, match=r"unknown parameter `patience`.*min_epochs, margin"):
        make_stopper("pareto", {"patience": 2})
    with pytest.raises(SpecError, match="takes no parameters"):
        make_stopper("none", {"margin": 0.1})
    with pytest.raises(RegistryError, match=r"valid names are \['none', 'pareto'\]"):
        make_stopper("hyperband")
    assert make_stopper("pareto", {"margin": 0.05}) == ParetoStopper(margin=0.05)


def test_references_read_completed_curves_once_per_architecture():
    study = optuna.create_study(directions=["maximize", "minimize"])
    for key, state, curve in [
        ("a", TrialState.COMPLETE, [0.1, 0.2]),
        ("a", TrialState.COMPLETE, [0.1, 0.2]),  # a duplicate of a
        ("b", TrialState.PRUNED, [0.3]),
        ("c", TrialState.COMPLETE, None),  # an old trial: its curve only in the user attribute
    ]:
        t = study.ask()
        t.set_user_attr("arch_key", key)
        t.set_user_attr("curve", [0.5, 0.6, 0.7])
        for step, v in enumerate(curve or [], start=1):
            t.storage.set_trial_intermediate_value(t._trial_id, step, v)
        study.tell(t, [0.9, 7.0] if state == TrialState.COMPLETE else None, state=state)
    refs = references(study.get_trials())
    assert refs == [Reference(7.0, (0.1, 0.2)), Reference(7.0, (0.5, 0.6, 0.7))]
    assert trial_curve(study.trials[2]) == (0.3,)


# -- whole studies ----------------------------------------------------------------------------

EPOCHS = 6


def two_level_curve(arch: Architecture) -> list[float]:
    """One hidden layer learns to 0.9, two only to 0.5: every two-layer network is dominated
    by the cheaper one-layer networks, at every epoch."""
    final = 0.9 if arch.depth == 1 else 0.5
    return [final * (1 - 0.5**e) for e in range(1, EPOCHS + 1)]


def curve_table_problem(tmp_path, stopper, seed=0):
    """A problem over ``small_space`` looked up in a table of ``two_level_curve`` curves."""
    space = small_space()
    path = write_curve_table(tmp_path / "t.parquet", space, two_level_curve)
    return Problem(
        space=space,
        evaluator=TableEvaluator(path=str(path)),
        budget=Budget(10_000_000),
        seed=seed,
        stopper=stopper,
    )


def table_study(tmp_path, stopper, *, trials=16, seed=0):
    problem = curve_table_problem(tmp_path, stopper, seed)
    study = optuna.create_study(
        directions=problem.directions, sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    study.set_metric_names(problem.metric_names)
    optimize(study, problem, trials, progress=False)
    return study


def test_local_study_stops_dominated_trials_pruned_with_fewer_epochs(tmp_path):
    study = table_study(tmp_path, ParetoStopper(min_epochs=2, margin=0.03, min_dominating=2))
    trials = study.get_trials()
    trained = [t for t in trials if "duplicate_of" not in t.user_attrs]
    pruned = [t for t in trained if t.state == TrialState.PRUNED]
    complete = [t for t in trained if t.state == TrialState.COMPLETE]
    assert len(pruned) >= 3
    for t in pruned:
        depth = t.user_attrs["depth"]
        assert depth == 2  # only dominated architectures are stopped
        assert t.user_attrs["epochs"] < EPOCHS
        assert t.user_attrs[ATTR_STOPPED].startswith("pareto: dominated at epoch")
        # the curve up to the stop, as intermediate values and as the curve attribute
        assert sorted(t.intermediate_values) == list(range(1, t.user_attrs["epochs"] + 1))
        assert list(t.intermediate_values.values()) == t.user_attrs["curve"]
        assert t.values is None
    for t in complete:
        assert sorted(t.intermediate_values) == list(range(1, EPOCHS + 1))
        assert t.user_attrs["epochs"] == EPOCHS
    # stopped trials count as finished toward the target
    c = counts(trials)
    assert c["finished"] == 16 and c["pruned"] == len(pruned) and c["complete"] == len(complete)
    # the same proposals without the stopper: all trained to the end, and the same front
    baseline = table_study(tmp_path, NoStopper())
    # (repeated proposals are stored PRUNED with the values they re-tell: bitnas.search.repeats)
    assert all(
        t.state == TrialState.COMPLETE for t in baseline.get_trials() if not is_repeat(t)
    )
    front = [t.user_attrs["arch_key"] for t in front_trials(study)]
    assert front == [t.user_attrs["arch_key"] for t in front_trials(baseline)]


def test_a_stopped_architecture_proposed_again_is_not_trained_again(tmp_path):
    stopper = ParetoStopper(min_epochs=2, margin=0.03, min_dominating=2)
    study = table_study(tmp_path, stopper)
    stopped = next(
        t
        for t in study.get_trials()
        if t.state == TrialState.PRUNED and "duplicate_of" not in t.user_attrs
    )
    before = counts(study.get_trials())
    # the sampler proposes the stopped architecture again: told PRUNED from the stopped
    # trial (curve, epochs, reason), not trained, and not counted toward the target
    study.enqueue_trial(stopped.params)
    optimize(study, curve_table_problem(tmp_path, stopper), 1, progress=False)
    again = study.get_trials()[before["finished"] + before["duplicate"] + before["rejected"]]
    assert again.params == stopped.params
    assert again.state == TrialState.PRUNED
    assert again.user_attrs["duplicate_of"] == stopped.number
    assert again.user_attrs[ATTR_STOPPED].startswith(f"as trial {stopped.number}, not trained")
    assert again.intermediate_values == stopped.intermediate_values
    assert again.user_attrs["epochs"] == stopped.user_attrs["epochs"]
    after = counts(study.get_trials())
    assert after["finished"] == before["finished"] + 1  # one newly trained trial, elsewhere
    assert after["duplicate"] == before["duplicate"] + 1
    # without a stopper the same proposal is trained to the end
    study.enqueue_trial(stopped.params)
    optimize(study, curve_table_problem(tmp_path, NoStopper()), 1, progress=False)
    last = study.get_trials()[-1]
    assert last.params == stopped.params and last.state == TrialState.COMPLETE
    assert "duplicate_of" not in last.user_attrs and last.user_attrs["epochs"] == EPOCHS


def test_a_sampler_that_keeps_proposing_a_stopped_architecture_gets_unseen_ones(tmp_path):
    """NSGA-II/III and GP never see PRUNED trials: a sampler stuck on a stopped architecture
    gets, every ``FALLBACK_AFTER`` re-told stops, a feasible architecture not trained yet,
    instead of the run ending as if the space were exhausted."""
    stopper = ParetoStopper(min_epochs=2, margin=0.03, min_dominating=2)
    study = table_study(tmp_path, stopper)
    trials = study.get_trials()
    stopped = next(
        t for t in trials if t.state == TrialState.PRUNED and "duplicate_of" not in t.user_attrs
    )
    trained_before = {t.user_attrs["arch_key"] for t in trials if "epochs" in t.user_attrs}
    before = counts(trials)
    study.sampler = optuna.samplers.PartialFixedSampler(
        stopped.params, optuna.samplers.RandomSampler(seed=1)
    )
    optimize(study, curve_table_problem(tmp_path, stopper), 3, progress=False)
    new = study.get_trials()[len(trials) :]
    assert counts(study.get_trials())["finished"] == before["finished"] + 3
    retold = [t for t in new if t.user_attrs.get("duplicate_of") == stopped.number]
    fresh = [t for t in new if t.user_attrs.get("proposed_by") == "unseen-fallback"]
    assert len(retold) == 3 * FALLBACK_AFTER and len(fresh) == 3
    keys = [t.user_attrs["arch_key"] for t in fresh]
    assert len(set(keys)) == 3 and not set(keys) & trained_before
    assert all("duplicate_of" not in t.user_attrs for t in fresh)


def test_unseen_draw_is_none_once_every_feasible_architecture_was_trained(tmp_path):
    problem = curve_table_problem(tmp_path, NoStopper())
    every = {a.key(): None for _, a in problem.space.grid_with_params()}
    assert _feasible_draw(problem, seed=0, avoid=every) is None
    one = next(iter(every))
    rest = {k: None for k in every if k != one}
    params = _feasible_draw(problem, seed=0, avoid=rest)
    assert params is not None and problem.space.from_params(params).key() == one


def test_a_twin_stopped_in_another_run_is_reused_only_with_a_stopper(tmp_path):
    problem = curve_table_problem(tmp_path, ParetoStopper())
    study = optuna.create_study(directions=problem.directions)
    arch = next(a for _, a in problem.space.grid_with_params())
    other = study.ask()  # another run's trial of the same architecture, stopped early
    other.set_user_attr("arch_key", arch.key())
    other.set_user_attr(ATTR_STOPPED, "pareto: dominated at epoch 2")
    study.tell(other, state=TrialState.PRUNED)
    mine = Proposal(study.ask(), arch, 1.0)
    assert wait_for_twin(study, mine, poll=0.01, stopped=True).number == other.number
    assert wait_for_twin(study, mine, poll=0.01, stopped=False) is None


def test_samplers_keep_sampling_after_stopped_trials(tmp_path):
    """Optuna's TPE ranks PRUNED trials through ``study.direction``, which fails in a
    multi-objective study once they carry intermediate values; bitnas's samplers must not."""
    space = small_space()
    path = write_curve_table(tmp_path / "t.parquet", space, two_level_curve)
    for name in ("tpe", "known-cost", "nsga2"):
        problem = Problem(
            space=space,
            evaluator=TableEvaluator(path=str(path)),
            budget=Budget(10_000_000),
            stopper=ParetoStopper(min_epochs=2, min_dominating=1),
        )
        study = optuna.create_study(
            directions=problem.directions, sampler=make_sampler(name, 0, problem)
        )
        optimize(study, problem, 24, progress=False)
        c = counts(study.get_trials())
        assert c["finished"] == 24 and c["pruned"] > 0, (name, c)


def test_study_file_selects_and_configures_the_stopper(tmp_path):
    text = (
        small_study_toml("s", bitops="1e9", epochs=1, study_extra='stopper = "pareto"\n')
        + "[stopper]\nmargin = 0.05\nmin_dominating = 1\n"
    )
    import tomllib

    spec = StudySpec.from_dict(tomllib.loads(text), source="s.toml")
    assert spec.problem().stopper == ParetoStopper(margin=0.05, min_dominating=1)
    assert spec.to_dict()["stopper"] == {
        "min_epochs": 3,
        "margin": 0.05,
        "min_dominating": 1,
        "headroom": 0.9,
    }
    assert spec.replace(stopper="none").problem().stopper == NoStopper()
    bad = tomllib.loads(text.replace("margin = 0.05", "margin = 2"))
    with pytest.raises(SpecError, match=r"`margin` must be .* got 2 \(in \[stopper\] of s.toml\)"):
        StudySpec.from_dict(bad, source="s.toml")
    off = tomllib.loads(text.replace('stopper = "pareto"\n', ""))
    with pytest.raises(SpecError, match=r'\[stopper\] sets `margin`.*"none"'):
        StudySpec.from_dict(off, source="s.toml")
    typo = tomllib.loads(text.replace('"pareto"', '"paretto"'))
    with pytest.raises(SpecError, match=r"`stopper` must be one of \['none', 'pareto'\]"):
        StudySpec.from_dict(typo, source="s.toml")


def test_run_with_a_table_and_the_stopper_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (
        small_study_toml(
            "e2e",
            bitops="1e9",
            epochs=1,
            study_extra='stopper = "pareto"\nsampler = "random"\n',
            storage=f"sqlite:///{tmp_path}/e2e.db",
        )
        + '[table]\npath = "t.parquet"\n[stopper]\nmin_epochs = 2\nmin_dominating = 1\n'
    )
    (tmp_path / "e2e.toml").write_text(text)
    import tomllib

    spec = StudySpec.from_dict(tomllib.loads(text))
    write_curve_table(tmp_path / "t.parquet", spec.space, two_level_curve)
    result = run(tmp_path / "e2e.toml", trials=12, progress=False)
    c = result.counts()
    assert c["finished"] == 12 and c["pruned"] > 0
    stored = optuna.load_study(study_name="e2e", storage=f"sqlite:///{tmp_path}/e2e.db")
    pruned = [t for t in stored.trials if t.state == TrialState.PRUNED and not is_repeat(t)]
    assert pruned and all(0 < len(t.intermediate_values) < EPOCHS for t in pruned)
