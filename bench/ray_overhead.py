"""Per-trial overhead and parallel efficiency of the Ray backend against the local one.

    python bench/ray_overhead.py [--trials 8] [--seconds 2]

Every trial burns ``--seconds`` of CPU (a busy loop, no sleeping) on a fixed architecture-free
evaluator, so the wall time beyond trials x seconds / workers is the backend's own cost:
proposing and recording trials in the study (SQLite in a temporary folder), and for Ray,
Tune's scheduling and result handling. Ray is started before the clock starts (its ~3-8 s
start-up is paid once per run, not per trial). The last row is the path for trials this short
without Ray: two `bitnas run`-style local runs (processes) sharing one journal study and its
target, timed from the moment both have opened the study. Reported: wall time, overhead per trial
((wall - ideal) x workers / trials) and parallel efficiency (ideal / wall).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from bitnas.evaluators import CallableEvaluator, EvalResult
from bitnas.search import Problem, RaySettings, open_storage, optimize
from bitnas.search.raytune import _init_ray
from bitnas.spaces import MLPSpace


def burn(seconds: float):  # type: ignore[no-untyped-def]
    def evaluate(arch, *, seed, report):  # type: ignore[no-untyped-def]
        end = time.perf_counter() + seconds
        x = 0
        while time.perf_counter() < end:
            x += 1
        return EvalResult(metrics={"val_accuracy": (hash(arch.key()) % 1000) / 1000})

    return evaluate


def bench_space() -> MLPSpace:
    """The small MLP space of this benchmark (and of ``bench/trial_writes.py``)."""
    return MLPSpace(input_shape=(64,), num_classes=10, depth=(1, 3), width=(16, 32, 64, 128),
                    wbits=(2, 4, 8), abits=(1, 2, 4), timesteps=(1, 2, 4))  # fmt: skip


def problem_for(seconds: float) -> Problem:
    return Problem(space=bench_space(), evaluator=CallableEvaluator(burn(seconds)))


def local_worker(url: str, trials: int, seconds: float, go: Path, seed: int) -> None:
    """One of the ``local, 2 processes`` runs: imports and opens the study, then waits for
    ``go`` so that Python's start-up stays out of the clock (as Ray's does)."""
    from bitnas.search import load_study

    problem = problem_for(seconds)
    study = load_study(open_storage(url, create=False), "shared")
    study.sampler = optuna.samplers.RandomSampler(seed=seed)
    (go.parent / f"ready-{seed}").touch()
    while not go.exists():
        time.sleep(0.005)
    optimize(study, problem, trials, backend="local", progress=False, target=trials)


def local_processes(tmp: str, args: argparse.Namespace, problem: Problem) -> float:
    """Wall seconds of two local runs sharing one journal study of ``--trials`` trials (a
    SQLite file takes one `bitnas run` at a time)."""
    url = f"journal:///{tmp}/shared.log"  # two `bitnas run` on one study use a journal
    study = optuna.create_study(storage=open_storage(url), study_name="shared",
                                directions=problem.directions)  # fmt: skip
    study.set_metric_names(problem.metric_names)
    go = Path(tmp) / "go"
    cmd = [sys.executable, __file__, "--worker", url, str(args.trials), str(args.seconds)]
    procs = [subprocess.Popen([*cmd, str(go), str(i)]) for i in range(2)]
    while any(p.poll() is None for p in procs) and len(list(Path(tmp).glob("ready-*"))) < 2:
        time.sleep(0.1)
    go.touch()
    t0 = time.perf_counter()
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a local worker failed (exit {p.returncode})")
    wall = time.perf_counter() - t0
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    assert len(done) == args.trials, f"{len(done)} complete trials for {args.trials}"
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        url, n, sec, go, seed = args.worker
        local_worker(url, int(n), float(sec), Path(go), int(seed))
        return
    problem = problem_for(args.seconds)
    _init_ray("")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, backend, workers in (("local", "local", 1), ("ray, 1 worker", "ray", 1),
                                       ("ray, 2 workers", "ray", 2)):  # fmt: skip
            study = optuna.create_study(
                storage=open_storage(f"sqlite:///{tmp}/{backend}{workers}.db"),
                directions=problem.directions,
                sampler=optuna.samplers.RandomSampler(seed=0),
            )
            study.set_metric_names(problem.metric_names)
            opts = {"settings": RaySettings(max_concurrent=workers)} if backend == "ray" else {}
            t0 = time.perf_counter()
            optimize(study, problem, args.trials, backend=backend, progress=False, **opts)
            wall = time.perf_counter() - t0
            ideal = args.trials * args.seconds / workers
            rows.append((name, wall, (wall - ideal) * workers / args.trials, ideal / wall))
        wall = local_processes(tmp, args, problem)
        ideal = args.trials * args.seconds / 2
        rows.append(("local, 2 procs", wall, (wall - ideal) * 2 / args.trials, ideal / wall))
    print(f"{args.trials} trials of {args.seconds:g} s of CPU each")
    print(f"{'backend':16s} {'wall s':>8s} {'overhead s/trial':>17s} {'efficiency':>11s}")
    for name, wall, over, eff in rows:
        print(f"{name:16s} {wall:8.2f} {over:17.3f} {eff:11.1%}")


if __name__ == "__main__":
    main()
