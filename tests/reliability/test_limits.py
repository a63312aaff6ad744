"""[limits]: a trial over its wall time or memory cap ends FAIL with that reason, even when the
evaluator never returns control; the study goes on and counts it as failed."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
from optuna.trial import TrialState

from bitnas.errors import SpecError
from bitnas.evaluators import (
    CallableEvaluator,
    DataSpec,
    EvalResult,
    LimitedEvaluator,
    TrainedEvaluator,
    TrainSpec,
    TrialLimits,
    limited,
)
from bitnas.search import Problem, counts, optimize
from bitnas.spaces import Architecture
from bitnas.studies import StudySpec, load_spec
from tests.conftest import small_space, small_study_toml
from tests.search.test_trials import new_study

# A capped trial runs in a child process: ship this module's evaluators by value (as Ray
# does), so the child needs no import of the test package. ``marker`` files tell the first
# call (in one child) from the later ones (in others).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def stuck_once(arch: Architecture, *, seed: int, report: object, marker: Path) -> EvalResult:
    """The first call never returns (a loop stuck in one epoch); later calls are quick."""
    if not marker.exists():
        marker.write_text("stuck")
        while True:  # no report, no return: only an outside kill ends this
            time.sleep(0.01)
    return EvalResult(metrics={"val_accuracy": 0.5})


def hog_once(arch: Architecture, *, seed: int, report: object, marker: Path) -> EvalResult:
    """The first call holds 1 GiB (touched, so resident); later calls are quick."""
    if not marker.exists():
        marker.write_text("hog")
        block = bytearray(b"x") * 2**30
        time.sleep(30)
        return EvalResult(metrics={"val_accuracy": float(len(block))})
    return EvalResult(metrics={"val_accuracy": 0.5})


def reporting(arch: Architecture, *, seed: int, report) -> EvalResult:  # type: ignore[no-untyped-def]
    stop = False
    for epoch in (1, 2, 3):
        stop = report(epoch, {"val_accuracy": 0.1 * epoch})
        if stop:
            break
    return EvalResult(metrics={"val_accuracy": 0.3}, epochs=epoch, stopped=stop)


def raising(arch: Architecture, *, seed: int, report: object) -> EvalResult:
    raise ValueError(f"no luck with T={arch.timesteps}")


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "first-call-done"


def run_capped(fn, limits: TrialLimits, n: int, marker: Path):  # type: ignore[no-untyped-def]
    ev = LimitedEvaluator(CallableEvaluator(functools.partial(fn, marker=marker)), limits)
    problem = Problem(space=small_space(), evaluator=ev)
    study = new_study(problem)
    added = optimize(study, problem, n, progress=False)
    return study, added


def test_a_stuck_trial_fails_at_its_wall_time_and_the_next_completes(marker):
    t0 = time.monotonic()
    study, added = run_capped(stuck_once, TrialLimits(trial_seconds=1.5), 2, marker)
    assert marker.read_text() == "stuck", "the first trial ran in a child that saw the marker"
    first, *rest = study.trials
    assert first.state == TrialState.FAIL
    assert "wall time limit of 1.5 s" in first.user_attrs["error"]
    assert first.user_attrs["error"].startswith("TrialLimitError")
    assert [t.state for t in rest] == [TrialState.COMPLETE] * 2
    assert (added["failed"], added["finished"]) == (1, 2)
    assert counts(study.trials)["failed"] == 1
    assert time.monotonic() - t0 < 20  # killed at the cap, not left running


def test_a_trial_over_its_memory_cap_fails_and_the_next_completes(marker):
    study, added = run_capped(
        hog_once, TrialLimits(trial_memory_mb=600, trial_seconds=20), 1, marker
    )
    first, second = study.trials
    assert first.state == TrialState.FAIL
    assert "memory limit" in first.user_attrs["error"]
    assert "trial_memory_mb = 600" in first.user_attrs["error"]
    assert second.state == TrialState.COMPLETE and second.values[0] == 0.5
    # what a capped trial used is recorded, so caps can be set from real numbers
    assert 0 < second.user_attrs["peak_rss_mb"] < 600
    assert (added["failed"], added["finished"]) == (1, 1)


def test_capped_trials_keep_reports_errors_and_pruning():
    stops = []

    def report(step, metrics):  # type: ignore[no-untyped-def]
        stops.append((step, metrics["val_accuracy"]))
        return step == 2  # the runner asks to stop after epoch 2

    ev = LimitedEvaluator(CallableEvaluator(reporting), TrialLimits(trial_seconds=30))
    arch = next(iter(small_space().grid()))
    r = ev.evaluate(arch, seed=0, report=report)
    assert stops == [(1, pytest.approx(0.1)), (2, pytest.approx(0.2))]
    assert r.stopped and r.epochs == 2
    ev = LimitedEvaluator(CallableEvaluator(raising), TrialLimits(trial_seconds=30))
    with pytest.raises(ValueError, match="no luck with T=") as info:
        ev.evaluate(arch, seed=0)
    assert any("raised in the trial's process" in n for n in info.value.__notes__)


def test_limits_are_validated_and_optional():
    assert not TrialLimits().active
    ev = CallableEvaluator(reporting)
    assert limited(ev, TrialLimits()) is ev  # no cap: trials stay in-process
    assert isinstance(limited(ev, TrialLimits(trial_seconds=5)), LimitedEvaluator)
    for kw, msg in [
        ({"trial_seconds": -1}, "`trial_seconds` must be a number of seconds >= 0"),
        ({"trial_seconds": float("inf")}, "`trial_seconds` must be"),
        ({"trial_seconds": "10"}, "got '10'"),
        ({"trial_memory_mb": 1.5}, "`trial_memory_mb` must be an integer number of MiB"),
        ({"trial_memory_mb": True}, "`trial_memory_mb` must be"),
    ]:
        with pytest.raises(SpecError, match=msg):
            TrialLimits(**kw)  # type: ignore[arg-type]


def test_study_file_limits_section(tmp_path):
    text = small_study_toml("lim", bitops="60_000", epochs=2)
    f = tmp_path / "lim.toml"
    f.write_text(text + "[limits]\ntrial_seconds = 90\ntrial_memory_mb = 2048\n")
    spec = load_spec(f)
    assert spec.limits == TrialLimits(trial_seconds=90, trial_memory_mb=2048)
    ev = spec.problem().evaluator
    assert isinstance(ev, LimitedEvaluator) and isinstance(ev.inner, TrainedEvaluator)
    assert ev.objective == "val_accuracy"
    f.write_text(text + "[limits]\ntrial_secs = 90\n")
    with pytest.raises(
        SpecError, match=r"unknown key `trial_secs` in \[limits\]; did you mean `trial_seconds`"
    ) as e:
        load_spec(f)
    assert f"[limits] of {f}" in str(e.value)
    with pytest.raises(SpecError, match=r"`trial_memory_mb` must be .* got -5 \(in \[limits\]"):
        StudySpec.from_dict({"study": {"name": "x"}, "limits": {"trial_memory_mb": -5}})


@pytest.mark.slow
def test_real_training_stuck_in_a_long_epoch_is_stopped():
    """The trained evaluator with one epoch far longer than the cap: no report ever comes."""
    data = DataSpec(name="synthetic", samples=20_000)
    ev = LimitedEvaluator(
        TrainedEvaluator(data=data, train=TrainSpec(epochs=1, batch_size=1)),
        TrialLimits(trial_seconds=2),
    )
    arch = next(iter(small_space(input_shape=data_shape(data)).grid()))
    t0 = time.monotonic()
    with pytest.raises(Exception, match="wall time limit of 2 s"):
        ev.evaluate(arch, seed=0, report=lambda step, m: False)
    assert time.monotonic() - t0 < 15


def data_shape(data: DataSpec) -> tuple[int, ...]:
    from bitnas.evaluators import dataset_info

    return dataset_info(data).input_shape


def test_an_unguarded_launch_script_is_not_rerun_in_its_capped_trials(tmp_path):
    """multiprocessing would re-import a script's ``__main__`` in each child: a script without
    an ``if __name__ == "__main__"`` guard would start its study again inside every trial."""
    script = tmp_path / "launch.py"
    script.write_text(
        "from bitnas.evaluators import CallableEvaluator, LimitedEvaluator, TrialLimits\n"
        "from tests.conftest import small_space\n"
        "def ev(arch, *, seed, report):\n"
        "    return {'val_accuracy': 0.25}\n"
        "print('launched', flush=True)\n"
        "capped = LimitedEvaluator(CallableEvaluator(ev), TrialLimits(trial_seconds=60))\n"
        "arch = next(iter(small_space().grid()))\n"
        "print('result', capped.evaluate(arch, seed=0).metrics, flush=True)\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for args in ([str(script)], ["-"]):  # a script file, and a script piped to stdin
        p = subprocess.run([sys.executable, *args], input=script.read_text(), capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=120)  # fmt: skip
        assert p.returncode == 0, p.stderr[-2000:]
        assert p.stdout.splitlines() == ["launched", "result {'val_accuracy': 0.25}"]
