"""The Ray backend on a real local Ray: same records as the local backend, failures kept,
dead workers retried, and a whole study submitted as a Ray job."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from bitnas.evaluators import CallableEvaluator, EvalResult
from bitnas.search import Problem, RaySettings, counts, front_trials, optimize, pareto_mask
from bitnas.search.repeats import is_repeat
from bitnas.search.trials import FALLBACK_AFTER
from bitnas.spaces import Architecture, Budget, bitops
from tests.conftest import default_sigint, small_space, synthetic_accuracy

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    from ray import cloudpickle

    # workers cannot import test modules: ship the evaluators defined here by value
    for name in (__name__, "tests.conftest"):
        cloudpickle.register_pickle_by_value(sys.modules[name])
    yield
    import ray

    ray.shutdown()  # stops the local Ray this process started, and only that one


def table(arch: Architecture, *, seed: int, report) -> EvalResult:
    """A lookup-like evaluator: a deterministic function of the architecture."""
    report(1, {"val_accuracy": 0.1})
    n = len(arch.layers)
    return EvalResult(
        metrics={"val_accuracy": synthetic_accuracy(arch), "test_accuracy": 0.5},
        densities=[0.25] * n, spike_rates=[0.5] * n, epochs=1,
    )  # fmt: skip


def study_for(problem, seed=0):
    study = optuna.create_study(
        directions=problem.directions, sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    study.set_metric_names(problem.metric_names)
    return study


def summary(study):
    return sorted((t.state.name, t.user_attrs.get("arch_key")) for t in study.trials)


def test_ray_and_local_backends_record_the_same_study():
    problem = Problem(
        space=small_space(), evaluator=CallableEvaluator(table), budget=Budget(50_000)
    )
    local, remote = study_for(problem), study_for(problem)
    optimize(local, problem, 10, progress=False)
    added = optimize(remote, problem, 10, backend="ray", progress=False,
                     settings=RaySettings(max_concurrent=2))  # fmt: skip
    assert added["finished"] == 10
    assert counts(remote.trials)["finished"] == counts(local.trials)["finished"] == 10
    # the same proposals, trained or rejected alike (order can differ under concurrency)
    assert summary(remote) == summary(local)
    front = front_trials(remote)
    assert front and pareto_mask([t.values for t in front], problem.directions).all()
    assert all(t.values[1] <= 50_000 for t in front)
    done = [t for t in remote.trials if t.state == TrialState.COMPLETE]
    assert all(t.user_attrs.get("backend") == "ray" or "duplicate_of" in t.user_attrs for t in done)
    assert all(t.user_attrs["curve"] == [0.1] for t in done if "duplicate_of" not in t.user_attrs)


def failing(arch: Architecture, *, seed: int, report) -> EvalResult:
    if arch.timesteps == 4:
        raise ValueError(f"no luck with T={arch.timesteps}")
    return table(arch, seed=seed, report=report)


def test_a_raising_trial_ends_fail_with_its_error_and_the_study_goes_on():
    problem = Problem(space=small_space(), evaluator=CallableEvaluator(failing))
    study = study_for(problem, seed=3)
    added = optimize(study, problem, 6, backend="ray", progress=False,
                     settings=RaySettings(max_concurrent=2))  # fmt: skip
    assert added["finished"] == 6
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed, "seed 3 proposes T=4 architectures"
    for t in failed:
        assert t.user_attrs["error"] == "_RemoteFailure: ValueError: no luck with T=4"
        # the worker's own traceback, with the frame that raised, not the driver's
        assert "no luck" in t.user_attrs["traceback"]
        assert "in failing" in t.user_attrs["traceback"]


def test_a_killed_worker_is_retried_and_the_trial_completes(tmp_path):
    marker = tmp_path / "killed-once"

    def dies_once(arch: Architecture, *, seed: int, report) -> EvalResult:
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies mid-trial
        return table(arch, seed=seed, report=report)

    problem = Problem(space=small_space(), evaluator=CallableEvaluator(dies_once))
    study = study_for(problem)
    added = optimize(study, problem, 3, backend="ray", progress=False,
                     settings=RaySettings(max_concurrent=1, max_failures=2))  # fmt: skip
    assert marker.exists()
    assert added["finished"] == 3 and added["failed"] == 0
    # the retried trial reported its epoch again: the curve has it once
    assert all(t.user_attrs["curve"] == [0.1] for t in study.trials if "curve" in t.user_attrs)
    assert [t.state for t in study.trials if "rejected" not in t.user_attrs] == [
        TrialState.COMPLETE
    ] * 3


JOB_CLIENT = """
import sys, time
from ray.job_submission import JobSubmissionClient
address, entrypoint, root = sys.argv[1:]
deadline = time.time() + 120
while True:  # the head's dashboard takes a few seconds to come up
    try:
        client = JobSubmissionClient(address)
        break
    except Exception:
        if time.time() > deadline:
            raise
        time.sleep(0.5)
job = client.submit_job(entrypoint=entrypoint, runtime_env={
    "working_dir": root, "excludes": [".venv", ".git", "runs", "*.db", "__pycache__"]})
while not client.get_job_status(job).is_terminal():
    time.sleep(1)
print(client.get_job_status(job).value)
print(client.get_job_logs(job))
"""


def test_concurrent_proposals_of_one_architecture_train_it_once():
    space = small_space(depth=(1, 1), width=(16, 32), wbits=(2,), abits=(1, 2), timesteps=(1, 4))
    assert space.size() == 8

    def counting(arch: Architecture, *, seed: int, report) -> EvalResult:
        time.sleep(0.3)
        return table(arch, seed=seed, report=report)

    for seed in range(2):
        problem = Problem(space=space, evaluator=CallableEvaluator(counting))
        local, remote = study_for(problem, seed), study_for(problem, seed)
        optimize(local, problem, 5, progress=False)
        optimize(remote, problem, 5, backend="ray", progress=False,
                 settings=RaySettings(max_concurrent=4))  # fmt: skip
        trained = [t.user_attrs["arch_key"] for t in remote.trials
                   if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]  # fmt: skip
        assert len(trained) == len(set(trained)) == 5, seed
        assert counts(remote.trials)["finished"] == counts(local.trials)["finished"] == 5


def test_a_sampler_stuck_on_a_trained_architecture_gets_unseen_ones_on_ray():
    problem = Problem(space=small_space(), evaluator=CallableEvaluator(table))
    study = study_for(problem)
    optimize(study, problem, 1, progress=False)
    study.sampler = optuna.samplers.PartialFixedSampler(
        study.trials[0].params, optuna.samplers.RandomSampler(seed=1)
    )
    added = optimize(study, problem, 2, backend="ray", progress=False,
                     settings=RaySettings(max_concurrent=1))  # fmt: skip
    assert added["finished"] == 2 and added["exhausted"] == 0
    new = study.trials[1:]
    repeats = [t for t in new if t.user_attrs.get("duplicate_of") == 0]
    fresh = [t for t in new if t.user_attrs.get("proposed_by") == "unseen-fallback"]
    assert len(repeats) == 2 * FALLBACK_AFTER and len(fresh) == 2
    assert all(t.user_attrs.get("backend") == "ray" for t in fresh)
    assert (
        len({t.user_attrs["arch_key"] for t in fresh} | {study.trials[0].user_attrs["arch_key"]})
        == 3
    )


def test_resources_no_node_has_are_refused_not_waited_for():
    from bitnas.errors import SpecError

    problem = Problem(space=small_space(), evaluator=CallableEvaluator(table))
    with pytest.raises(SpecError, match="`gpus_per_trial` is 1 but the Ray cluster has 0 GPU"):
        optimize(study_for(problem), problem, 2, backend="ray", progress=False,
                 settings=RaySettings(gpus_per_trial=1))  # fmt: skip
    with pytest.raises(SpecError, match="`cpus_per_trial` is 64 but the Ray cluster has"):
        optimize(study_for(problem), problem, 2, backend="ray", progress=False,
                 settings=RaySettings(cpus_per_trial=64))  # fmt: skip


def test_ctrl_c_stops_the_run_closes_its_trials_and_says_so(tmp_path):
    f = tmp_path / "c.toml"
    db = tmp_path / "c.db"
    f.write_text((ROOT / "studies" / "digits.toml").read_text()
                 .replace('storage = "sqlite:///runs/digits.db"', f'storage = "sqlite:///{db}"')
                 .replace("epochs = 30", "epochs = 200"))  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "bitnas", "run", str(f), "--backend", "ray",
                             "--no-progress"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # fmt: skip
    deadline = time.time() + 300  # a local Ray starts in ~8 s, far slower on a loaded machine
    while True:
        running = []
        if proc.poll() is not None:
            break
        if db.exists():
            with contextlib.suppress(Exception):
                s = optuna.load_study(study_name="digits", storage=f"sqlite:///{db}")
                running = [t for t in s.trials if t.user_attrs.get("backend") == "ray"]
        if running or time.time() > deadline:
            break
        time.sleep(0.5)
    if not running:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=60)
        raise AssertionError(
            f"no trial started (exit {proc.returncode}): {out[-2000:]} {err[-3000:]}"
        )
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out[-2000:], err[-2000:])
    assert "interrupted" in err and "Run the same command again" in err
    s = optuna.load_study(study_name="digits", storage=f"sqlite:///{db}")
    assert not [t for t in s.trials if t.state == TrialState.RUNNING]
    assert any(t.user_attrs.get("error", "").startswith("_RemoteFailure: interrupted")
               or t.user_attrs.get("error", "").startswith("interrupted") for t in s.trials)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_study_submitted_as_a_ray_job_to_a_local_head(tmp_path):
    """`ray start --head` on 127.0.0.1 with token authentication, a job through the Jobs API,
    the head stopped by its own PID."""
    gcs, dash, client, agent, metrics = (_free_port() for _ in range(5))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16)}  # fmt: skip
    ray_cli = str(Path(sys.executable).parent / "ray")
    log = (tmp_path / "head.log").open("w")
    short_tmp = tempfile.mkdtemp(prefix="bnray", dir="/tmp")  # Unix socket paths are short
    head = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
         f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
         f"--metrics-export-port={metrics}", "--num-cpus=2", "--disable-usage-stats",
         f"--temp-dir={short_tmp}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=default_sigint,  # it is stopped by SIGINT
    )  # fmt: skip
    try:
        db = tmp_path / "job.db"
        entrypoint = (
            f"{sys.executable} -m bitnas run studies/digits.toml --backend ray "
            f"--trials 4 --storage sqlite:///{db} --no-progress"
        )
        # The Jobs API client runs in a process of its own: Ray reads the auth token from the
        # environment once per process, and this one already imported Ray without it.
        p = subprocess.run(
            [sys.executable, "-c", JOB_CLIENT, f"http://127.0.0.1:{dash}", entrypoint, str(ROOT)],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        head_log = (tmp_path / "head.log").read_text()[-2000:]
        assert p.returncode == 0, f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}\n{head_log}"
        status, logs = p.stdout.split("\n", 1)
        assert status == "SUCCEEDED", logs[-3000:]
        assert "added 4 finished trials" in logs
        study = optuna.load_study(study_name="digits", storage=f"sqlite:///{db}")
        done = [
            t
            for t in study.trials
            if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs
        ]
        assert len(done) == 4
        assert all(t.user_attrs["backend"] == "ray" for t in done)
        assert all(t.values[1] <= 150_000 and 0 < t.values[0] <= 1 for t in done)
        assert all(
            bitops(Architecture.from_json(t.user_attrs["architecture"])) == t.values[1]
            for t in done
        )
    finally:
        if head.poll() is None:
            os.kill(head.pid, signal.SIGINT)  # `ray start --block` stops what it started
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(short_tmp, ignore_errors=True)


def test_stopper_on_ray_stops_dominated_trials_from_the_driver(tmp_path):
    """The stopper decides in the driver (a Tune scheduler) with the study's completed trials:
    dominated trials end PRUNED at the epoch of the decision, their curves stored."""
    from bitnas.search.stopping import ParetoStopper
    from tests.search.test_stopping import EPOCHS, curve_table_problem

    problem = curve_table_problem(
        tmp_path, ParetoStopper(min_epochs=2, margin=0.03, min_dominating=1)
    )
    study = study_for(problem)
    settings = RaySettings(max_concurrent=2)
    added = optimize(study, problem, 12, backend="ray", progress=False, settings=settings)
    assert added["finished"] == 12
    pruned = [
        t for t in study.get_trials() if t.state == TrialState.PRUNED and not is_repeat(t)
    ]
    assert pruned
    for t in pruned:
        epochs = t.user_attrs["epochs"]
        assert t.user_attrs["depth"] == 2 and 2 <= epochs < EPOCHS
        assert f"epoch {epochs} " in t.user_attrs["stopped"]
        assert sorted(t.intermediate_values) == list(range(1, epochs + 1))
        assert t.user_attrs["curve"] == list(t.intermediate_values.values())
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert len(t.intermediate_values) == EPOCHS
    # no architecture is trained twice: a re-proposal of a stopped one is re-told from it
    trained = [
        t.user_attrs["arch_key"]
        for t in study.get_trials()
        if "epochs" in t.user_attrs and "duplicate_of" not in t.user_attrs
    ]
    assert len(trained) == len(set(trained))
    # a later run proposing a stopped architecture again re-tells it, without training
    stopped = next(t for t in pruned if "duplicate_of" not in t.user_attrs)
    study.enqueue_trial(stopped.params)
    optimize(study, problem, 1, backend="ray", progress=False, settings=settings)
    again = [t for t in study.get_trials() if t.user_attrs.get("duplicate_of") == stopped.number]
    assert len(again) == 1 and again[0].state == TrialState.PRUNED
    assert again[0].user_attrs["stopped"].startswith(f"as trial {stopped.number}, not trained")
    assert again[0].intermediate_values == stopped.intermediate_values
