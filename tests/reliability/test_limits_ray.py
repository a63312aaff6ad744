"""[limits] under the Ray backend: the caps are enforced inside each Ray task, per trial."""

from __future__ import annotations

import functools
import os

import pytest
from optuna.trial import TrialState

from bitnas.evaluators import CallableEvaluator, LimitedEvaluator, TrialLimits
from bitnas.search import Problem, RaySettings, counts, optimize
from tests.conftest import small_space
from tests.reliability.test_limits import stuck_once
from tests.search.test_raytune import study_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    yield
    import ray

    ray.shutdown()  # stops the local Ray this process started, and only that one


def test_a_stuck_trial_on_ray_fails_at_its_wall_time_and_the_study_goes_on(tmp_path):
    marker = tmp_path / "first-call-done"
    fn = functools.partial(stuck_once, marker=marker)
    ev = LimitedEvaluator(CallableEvaluator(fn), TrialLimits(trial_seconds=2))
    problem = Problem(space=small_space(), evaluator=ev)
    study = study_for(problem)
    added = optimize(study, problem, 2, backend="ray", progress=False,
                     settings=RaySettings(max_concurrent=1))  # fmt: skip
    assert marker.read_text() == "stuck"
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1, [
        (t.user_attrs.get("error"), t.user_attrs.get("traceback")) for t in failed
    ]
    assert "TrialLimitError: stopped at the wall time limit of 2 s" in failed[0].user_attrs["error"]
    assert (added["finished"], added["failed"]) == (2, 1)
    assert counts(study.trials)["running"] == 0
