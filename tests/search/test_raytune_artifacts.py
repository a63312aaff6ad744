"""On Ray, the driver attaches each trial's architecture and writes the dashboard's constraint
record; the artifact store never travels to a worker."""

from __future__ import annotations

import json
import os
import sys

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore

from bitnas.evaluators import CallableEvaluator, EvalResult
from bitnas.search import Problem, RaySettings, optimize
from bitnas.search.artifacts import arch_filename
from bitnas.search.trials import LEGACY_CONSTRAINTS_KEY
from bitnas.spaces import Architecture, Budget, bitops
from tests.conftest import small_space, synthetic_accuracy

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    from ray import cloudpickle

    for name in (__name__, "tests.conftest"):  # workers cannot import test modules
        cloudpickle.register_pickle_by_value(sys.modules[name])
    yield
    import ray

    ray.shutdown()  # stops the local Ray this process started, and only that one


class DriverOnlyStore(FileSystemArtifactStore):
    """Refuses to be pickled: shipping it to a worker would fail the run."""

    def __reduce__(self):
        raise TypeError("the artifact store must stay on the driver")


def evaluate(arch: Architecture, *, seed: int, report) -> EvalResult:
    return EvalResult(
        metrics={"val_accuracy": synthetic_accuracy(arch)},
        densities=[0.25] * len(arch.layers),
    )


def test_ray_trials_get_artifacts_and_the_legacy_record_from_the_driver(tmp_path):
    space = small_space()
    costs = sorted(bitops(a) for a in space.grid())
    store = DriverOnlyStore(tmp_path)
    problem = Problem(
        space=space,
        evaluator=CallableEvaluator(evaluate),
        budget=Budget(costs[len(costs) // 3]),
        artifacts=store,
    )
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(
        directions=problem.directions,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=2),
    )
    study.set_metric_names(problem.metric_names)
    added = optimize(
        study, problem, 4, backend="ray", progress=False, settings=RaySettings(max_concurrent=2)
    )
    assert added["finished"] == 4 and added["failed"] == 0
    trials = study.get_trials()
    assert any("rejected" in t.user_attrs for t in trials)
    for t in trials:
        assert t.system_attrs[LEGACY_CONSTRAINTS_KEY] == [t.constraints[Budget.CONSTRAINT]]
        (meta,) = optuna.artifacts.get_all_artifact_meta(t, storage=storage)
        assert meta.filename == arch_filename(t.number)
        with store.open_reader(meta.artifact_id) as f:
            assert Architecture.from_dict(json.load(f)) == Architecture.from_json(
                t.user_attrs["architecture"]
            )
