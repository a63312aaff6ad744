"""The life of one trial, shared by every backend: propose within budget, record, tell.

An architecture over budget is never trained: it is told PRUNED with its positive constraint
and a ``bitnas.rejected`` reason, so constraint-aware samplers (TPE, NSGA-II/III, GP) learn to
avoid it, and it does not count toward the study's target of trials.
"""

from __future__ import annotations

import json
import random
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from bitnas.errors import BudgetError
from bitnas.evaluators._base import EvalResult
from bitnas.search.problem import Problem
from bitnas.spaces.architecture import Architecture
from bitnas.spaces.budget import Budget
from bitnas.spaces.cost import COST_MODEL, cost_breakdown, event_bitops

__all__ = [
    "ATTR_ARCH",
    "ATTR_REJECTED",
    "Proposal",
    "counts",
    "evaluated_keys",
    "is_rejected",
    "propose",
    "tell_failure",
    "tell_result",
]

ATTR_ARCH = "architecture"
ATTR_KEY = "arch_key"
ATTR_REJECTED = "rejected"
ATTR_ERROR = "error"
ATTR_DUPLICATE = "duplicate_of"

#: After this many over-budget proposals in a row, the next trial is a uniformly drawn
#: feasible architecture. Samplers that model only COMPLETE trials (GP, QMC) never learn from
#: a rejection and would otherwise propose the same over-budget point forever.
FALLBACK_AFTER = 10
#: Uniform draws tried to find a feasible architecture before the budget is declared too tight.
FALLBACK_DRAWS = 20_000


@dataclass(frozen=True)
class Proposal:
    trial: optuna.trial.Trial
    arch: Architecture
    cost: float
    duplicate_of: FrozenTrial | None = None


def is_rejected(t: FrozenTrial) -> bool:
    return ATTR_REJECTED in t.user_attrs


def counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by outcome; ``finished`` is what counts toward a study's target."""
    c = {"complete": 0, "failed": 0, "pruned": 0, "rejected": 0, "running": 0, "finished": 0}
    for t in trials:
        if t.state == TrialState.RUNNING or t.state == TrialState.WAITING:
            c["running"] += 1
        elif is_rejected(t):
            c["rejected"] += 1
        else:
            c["finished"] += 1
            c[
                {TrialState.COMPLETE: "complete", TrialState.FAIL: "failed"}.get(t.state, "pruned")
            ] += 1
    return c


def evaluated_keys(trials: list[FrozenTrial]) -> dict[str, FrozenTrial]:
    """Architecture key -> first COMPLETE trial that trained it."""
    seen: dict[str, FrozenTrial] = {}
    for t in trials:
        key = t.user_attrs.get(ATTR_KEY)
        if t.state == TrialState.COMPLETE and key and key not in seen:
            seen[key] = t
    return seen


def _record_architecture(trial: optuna.trial.Trial, arch: Architecture, budget: Budget) -> None:
    breakdown = cost_breakdown(arch)
    trial.set_user_attr(ATTR_ARCH, arch.to_json())
    trial.set_user_attr(ATTR_KEY, arch.key())
    trial.set_user_attr("summary", arch.summary())
    trial.set_user_attr("cost", breakdown.to_dict())
    trial.set_user_attr("cost_model", COST_MODEL)
    trial.set_user_attr("weight_bits", breakdown.weight_bits)
    trial.set_user_attr("depth", arch.depth)
    trial.set_user_attr("timesteps", arch.timesteps)
    if budget.bitops is not None:
        trial.set_user_attr("budget_bitops", budget.bitops)


def _feasible_draw(problem: Problem, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    for _ in range(FALLBACK_DRAWS):
        params, arch = problem.space.sample_uniform_with_params(rng)
        if problem.budget.allows(problem.cost(arch)):
            return params
    raise BudgetError(
        f"no architecture within the budget of {problem.budget.bitops:,.0f} BitOps in "
        f"{FALLBACK_DRAWS:,} uniform draws from the space: run `bitnas cost` to see how much of "
        "the space fits, and raise the budget or narrow the space"
    )


def propose(
    study: optuna.Study, problem: Problem, seen: Mapping[str, FrozenTrial] | None = None
) -> Proposal:
    """Ask until an architecture within budget comes up; over-budget ones are told PRUNED.

    After ``FALLBACK_AFTER`` rejections in a row the next trial is enqueued with the parameters
    of a uniformly drawn feasible architecture (recorded as ``proposed_by``). ``seen`` maps
    architecture keys to completed trials: a proposal of an already trained architecture
    carries that trial as ``duplicate_of`` (training is deterministic, so its result can be
    reused instead of training twice).
    """
    budget = problem.budget
    rejected = 0
    while True:
        if rejected and rejected % FALLBACK_AFTER == 0:
            params = _feasible_draw(problem, seed=problem.seed * 1_000_003 + len(study.trials))
            study.enqueue_trial(params, user_attrs={"proposed_by": "feasible-fallback"})
        trial = study.ask()
        arch = problem.space.sample(trial)
        cost = float(problem.cost(arch))
        _record_architecture(trial, arch, budget)
        if budget.bitops is not None:
            trial.set_constraint(Budget.CONSTRAINT, budget.excess(cost))
        if budget.allows(cost):
            dup = (seen or {}).get(arch.key())
            return Proposal(trial, arch, cost, dup)
        trial.set_user_attr(
            ATTR_REJECTED, f"over budget: {cost:,.0f} > {budget.bitops:,.0f} BitOps, not trained"
        )
        study.tell(trial, state=TrialState.PRUNED)
        rejected += 1


def result_attrs(problem: Problem, arch: Architecture, result: EvalResult) -> dict[str, Any]:
    """User attributes recording what training measured."""
    attrs: dict[str, Any] = {
        k: v for k, v in result.metrics.items() if k != problem.evaluator.objective
    }
    attrs["epochs"] = result.epochs
    if result.densities is not None:
        attrs["densities"] = list(result.densities)
        attrs["event_bitops"] = event_bitops(arch, result.densities)
    for k, v in result.info.items():
        try:
            json.dumps(v)
        except TypeError:
            v = repr(v)
        attrs[k] = v
    return attrs


def tell_result(
    study: optuna.Study, problem: Problem, p: Proposal, result: EvalResult
) -> FrozenTrial:
    """Record ``result`` on the trial and tell it COMPLETE (or PRUNED if stopped early)."""
    objective = result.value(problem.evaluator.objective)
    for k, v in result_attrs(problem, p.arch, result).items():
        p.trial.set_user_attr(k, v)
    if result.stopped:
        # A run cut short has truncated metrics: never let them stand as a COMPLETE result.
        return study.tell(p.trial, state=TrialState.PRUNED)
    return study.tell(p.trial, [objective, p.cost])


def tell_duplicate(study: optuna.Study, p: Proposal) -> FrozenTrial:
    """Complete a proposal of an already trained architecture with that trial's results."""
    src = p.duplicate_of
    assert src is not None and src.values is not None
    for k, v in src.user_attrs.items():
        p.trial.set_user_attr(k, v)
    p.trial.set_user_attr(ATTR_DUPLICATE, src.number)
    return study.tell(p.trial, list(src.values))


def tell_failure(study: optuna.Study, p: Proposal, exc: BaseException) -> FrozenTrial:
    """Tell the trial FAIL, keeping the error (message and traceback tail) on it."""
    p.trial.set_user_attr(ATTR_ERROR, f"{type(exc).__name__}: {exc}")
    tb = "".join(traceback.format_exception(exc)[-6:])
    p.trial.set_user_attr("traceback", tb[-4000:])
    return study.tell(p.trial, state=TrialState.FAIL)
