"""Per-trial overhead and parallel efficiency of the Ray backend against the local one.

    python bench/ray_overhead.py [--trials 8] [--seconds 2]

Every trial burns ``--seconds`` of CPU (a busy loop, no sleeping) on a fixed architecture-free
evaluator, so the wall time beyond trials x seconds / workers is the backend's own cost:
proposing and recording trials in the study (SQLite in a temporary folder), and for Ray,
Tune's scheduling and result handling. Ray is started before the clock starts (its ~3-8 s
start-up is paid once per run, not per trial). Reported: wall time, overhead per trial
((wall - ideal) x workers / trials) and parallel efficiency (ideal / wall).
"""

from __future__ import annotations

import argparse
import tempfile
import time

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    space = MLPSpace(input_shape=(64,), num_classes=10, depth=(1, 3), width=(16, 32, 64, 128),
                     wbits=(2, 4, 8), abits=(1, 2, 4), timesteps=(1, 2, 4))  # fmt: skip
    problem = Problem(space=space, evaluator=CallableEvaluator(burn(args.seconds)))
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
    print(f"{args.trials} trials of {args.seconds:g} s of CPU each")
    print(f"{'backend':16s} {'wall s':>8s} {'overhead s/trial':>17s} {'efficiency':>11s}")
    for name, wall, over, eff in rows:
        print(f"{name:16s} {wall:8.2f} {over:17.3f} {eff:11.1%}")


if __name__ == "__main__":
    main()
