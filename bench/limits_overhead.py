"""What [limits] costs a trial: each capped trial runs in a process forked from a fork server.

    python bench/limits_overhead.py --archs 6 --repeats 3 --epochs 5

Times the same architectures of studies/digits.toml's space, trained in-process and capped
(``trial_seconds`` far above a trial's time, so no trial is stopped), interleaved round-robin;
and an evaluator that returns at once, which isolates the fixed cost of a capped trial (fork,
shipping the evaluator, the reply). The fork server is started (torch imported) before timing:
a run pays that once. Prints medians per trial and the overhead in ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from bitnas.evaluators import (
    CallableEvaluator,
    DataSpec,
    EvalResult,
    LimitedEvaluator,
    TrainedEvaluator,
    TrainSpec,
    TrialLimits,
)
from bitnas.evaluators.datasets import load_splits
from bitnas.studies import load_spec


def instant(arch, *, seed, report):  # type: ignore[no-untyped-def]
    return EvalResult(metrics={"val_accuracy": 0.5})


def timed(ev, arch) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    ev.evaluate(arch, seed=0, report=lambda step, m: False)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    space = load_spec("studies/digits.toml").space
    rng = random.Random(0)
    archs = [space.sample_uniform(rng) for _ in range(args.archs)]
    caps = TrialLimits(trial_seconds=3600, trial_memory_mb=8192)
    trained = TrainedEvaluator(data=DataSpec(name="digits"), train=TrainSpec(epochs=args.epochs))
    pairs = {
        "trained, in-process": trained,
        "trained, capped": LimitedEvaluator(trained, caps),
        "instant, in-process": CallableEvaluator(instant),
        "instant, capped": LimitedEvaluator(CallableEvaluator(instant), caps),
    }
    load_splits(trained.data)  # in-process trials share the loaded data, as in a run
    timed(pairs["instant, capped"], archs[0])  # start the fork server (imports torch once)
    times: dict[str, list[float]] = {k: [] for k in pairs}
    for _ in range(args.repeats):
        for arch in archs:
            for name, ev in pairs.items():
                times[name].append(timed(ev, arch))
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:22s} median {v:8.1f} ms per trial ({len(times[k])} trials)")
    fixed = med["instant, capped"] - med["instant, in-process"]
    extra = med["trained, capped"] - med["trained, in-process"]
    ratio = med["trained, capped"] / med["trained, in-process"]
    print(
        f"overhead of a capped trial: {fixed:.1f} ms fixed; {extra:.1f} ms ({ratio:.2f}x) on digits"
    )


if __name__ == "__main__":
    main()
