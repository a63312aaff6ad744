"""The local backend: trials one after another in this process (ask-and-tell)."""

from __future__ import annotations

from collections.abc import Mapping

import optuna
from optuna.trial import TrialState

from bitnas.search.problem import Problem
from bitnas.search.progress import Progress
from bitnas.search.trials import (
    counts,
    evaluated_keys,
    propose,
    tell_duplicate,
    tell_failure,
    tell_result,
)

__all__ = ["run_local"]


def run_local(
    study: optuna.Study, problem: Problem, n_trials: int, *, progress: bool = True
) -> dict[str, int]:
    """Run trials until ``n_trials`` more have finished; returns the counts of what was added.

    A trial that raises ends FAIL with its error stored and the study goes on; Ctrl-C closes
    the running trial as FAIL ("interrupted") before propagating, so nothing stays RUNNING.
    """
    before = counts(study.get_trials(deepcopy=False))
    seen = evaluated_keys(study.get_trials(deepcopy=False))
    bar = Progress(n_trials, enabled=progress)
    done = 0
    try:
        while done < n_trials:
            p = propose(study, problem, seen)
            if p.duplicate_of is not None:
                ft = tell_duplicate(study, p)
            else:
                curve: list[float] = []

                def report(
                    step: int, metrics: Mapping[str, float], curve: list[float] = curve
                ) -> bool:
                    curve.append(float(metrics.get(problem.evaluator.objective, float("nan"))))
                    return False

                try:
                    result = problem.evaluator.evaluate(p.arch, seed=problem.seed, report=report)
                    p.trial.set_user_attr("curve", curve)
                    ft = tell_result(study, problem, p, result)
                except KeyboardInterrupt as e:
                    tell_failure(study, p, e)
                    raise
                except Exception as e:  # any evaluator error fails this trial, not the study
                    ft = tell_failure(study, p, e)
                if ft.state == TrialState.COMPLETE:
                    seen.setdefault(p.arch.key(), ft)
            done += 1
            bar.update(ft)
    finally:
        bar.close()
    after = counts(study.get_trials(deepcopy=False))
    return {k: after[k] - before.get(k, 0) for k in after}
