"""The local backend: trials one after another in this process (ask-and-tell)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import optuna
from optuna.trial import TrialState

from bitnas.errors import EvaluationError, SpecError
from bitnas.search.problem import Problem
from bitnas.search.progress import Progress
from bitnas.search.stopping import Reference, references
from bitnas.search.trials import (
    ATTR_STOPPED,
    Proposal,
    counts,
    evaluated_keys,
    propose,
    tell_duplicate,
    tell_failure,
    tell_result,
)

__all__ = ["MAX_CONSECUTIVE_DUPLICATES", "MAX_CONSECUTIVE_FAILURES", "run_local"]

#: This many failed trials in a row stop the run: the evaluator, not one architecture, is broken.
MAX_CONSECUTIVE_FAILURES = 10
#: This many duplicate proposals in a row end the run early: the sampler finds nothing new.
MAX_CONSECUTIVE_DUPLICATES = 100


def run_local(
    study: optuna.Study, problem: Problem, n_trials: int, *, progress: bool = True
) -> dict[str, int]:
    """Run trials until ``n_trials`` more have finished; returns the counts of what was added.

    A trial that raises ends FAIL with its error stored and the study goes on (a re-run retries
    it); a configuration error (SpecError) or ``MAX_CONSECUTIVE_FAILURES`` failures in a row
    stop the run. Ctrl-C closes the running trial as FAIL ("interrupted") before propagating,
    so nothing stays RUNNING.
    """
    before = counts(study.get_trials(deepcopy=False))
    seen = evaluated_keys(study.get_trials(deepcopy=False))
    bar = Progress(n_trials, enabled=progress)
    done = failures = duplicates = 0
    try:
        while done < n_trials:
            p = propose(study, problem, seen)
            if p.duplicate_of is not None:
                tell_duplicate(study, p)
                duplicates += 1
                if duplicates >= MAX_CONSECUTIVE_DUPLICATES:
                    break
                continue
            duplicates = 0
            curve: list[float] = []
            stopped: list[str] = []
            # the study's completed trials as this trial starts: what the stopper compares with
            refs = (
                references(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
                if problem.stopper.active
                else []
            )

            def report(
                step: int,
                metrics: Mapping[str, float],
                p: Proposal = p,
                curve: list[float] = curve,
                stopped: list[str] = stopped,
                refs: list[Reference] = refs,
            ) -> bool:
                v = float(metrics.get(problem.evaluator.objective, math.nan))
                curve.append(v)
                # Optuna's trial.report refuses multi-objective studies; the storage call does
                # not, and the dashboard and samplers read the curve from there
                p.trial.storage.set_trial_intermediate_value(p.trial._trial_id, step, v)
                why = problem.stopper.stop_reason(step, curve, p.cost, refs)
                if why is not None:
                    stopped.append(why)
                return why is not None

            try:
                result = problem.evaluator.evaluate(p.arch, seed=problem.seed, report=report)
                p.trial.set_user_attr("curve", curve)
                if stopped and result.stopped:
                    p.trial.set_user_attr(ATTR_STOPPED, stopped[-1])
                ft = tell_result(study, problem, p, result)
            except (KeyboardInterrupt, SpecError) as e:
                tell_failure(study, p, e)
                raise
            except Exception as e:  # any other evaluator error fails this trial, not the study
                ft = tell_failure(study, p, e)
            bar.update(ft)
            if ft.state == TrialState.FAIL:
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise EvaluationError(
                        f"{failures} trials failed in a row; the last one (#{ft.number}) with "
                        f"{ft.user_attrs.get('error')}"
                    )
                continue
            failures = 0
            done += 1
            if ft.state == TrialState.COMPLETE:
                seen.setdefault(p.arch.key(), ft)
    finally:
        bar.close()
    after = counts(study.get_trials(deepcopy=False))
    added = {k: after[k] - before.get(k, 0) for k in after}
    added["exhausted"] = int(duplicates >= MAX_CONSECUTIVE_DUPLICATES)
    return added
