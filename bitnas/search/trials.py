"""The life of one trial, shared by every backend: propose within budget, record, tell.

An architecture over budget is never trained: it is told PRUNED with its positive constraint
and a ``rejected`` reason, and it does not count toward the study's target of trials. TPE learns
from such trials (it ranks infeasible PRUNED trials last); NSGA-II/III, GP and QMC read only
COMPLETE trials and never see them, so after ``FALLBACK_AFTER`` rejections in a row the next
trial is a uniformly drawn feasible architecture instead (``proposed_by = feasible-fallback``).

What counts toward a study's target, and what each outcome leaves on a trial:
``bitnas.search.records``. Runs that share a study (owners, twins, the shared target):
``bitnas.search.coordination``.

A sampler can get stuck on what the study already has: NSGA-II/III's population converges on a
small space, and NSGA-II/III and GP never see PRUNED trials, so they keep proposing stopped
architectures. After ``FALLBACK_AFTER`` repeated proposals in a row (of either kind) the runner
enqueues a uniformly drawn feasible architecture the study has not trained yet
(``proposed_by = unseen-fallback``; see ``propose(unseen=True)``); a run ends as "exhausted"
(``MAX_CONSECUTIVE_DUPLICATES`` repeats in a row) only when no such architecture is left or
the space is too large to enumerate one.
"""

from __future__ import annotations

import json
import math
import random
import traceback
from collections.abc import Container, Mapping
from typing import Any

import optuna
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.trial import FrozenTrial, TrialState

from bitnas.errors import BudgetError, StorageError
from bitnas.evaluators._base import EvalResult
from bitnas.search.artifacts import upload_architecture
from bitnas.search.attr_writes import set_trial_attrs
from bitnas.search.coordination import (
    _CLOSED,
    ORPHAN_AFTER_S,
    OWNER,
    _ahead,
    _alive,
    _live_elsewhere,
    _recording,
    _started,
    _stat,
    _twin,
    _unrecorded,
    close_abandoned,
    closed_so_far,
    in_flight_elsewhere,
    study_target,
    target_covered,
    tell_spare,
    wait_for_twin,
)
from bitnas.search.labels import label_trial
from bitnas.search.problem import Problem
from bitnas.search.records import (
    ATTR_ARCH,
    ATTR_DUPLICATE,
    ATTR_ERROR,
    ATTR_KEY,
    ATTR_REJECTED,
    ATTR_RETRY,
    ATTR_SPARE,
    ATTR_STOPPED,
    COUNT_KEYS,
    Proposal,
    counts,
    evaluated_keys,
    failed_for_itself,
    is_rejected,
    outcome,
    stopped_early,
)
from bitnas.search.repeats import ATTR_REPEAT_VALUES, show_repeats
from bitnas.spaces.architecture import Architecture
from bitnas.spaces.budget import Budget
from bitnas.spaces.cost import COST_MODEL, cost_breakdown, event_bitops
from bitnas.spaces.energy import ENERGY_MODEL, energy

__all__ = [
    "ATTR_ARCH",
    "ATTR_REJECTED",
    "ATTR_STOPPED",
    "Proposal",
    "counts",
    "evaluated_keys",
    "in_flight_elsewhere",
    "is_rejected",
    "propose",
    "stopped_early",
    "target_covered",
    "tell_failure",
    "tell_spare",
    "tell_result",
    "wait_for_twin",
    # moved to bitnas.search.records and bitnas.search.coordination, still importable here
    "ATTR_DUPLICATE",
    "ATTR_ERROR",
    "ATTR_KEY",
    "ATTR_RETRY",
    "ATTR_SPARE",
    "COUNT_KEYS",
    "ORPHAN_AFTER_S",
    "OWNER",
    "_CLOSED",
    "_ahead",
    "_alive",
    "_live_elsewhere",
    "_recording",
    "_started",
    "_stat",
    "_twin",
    "_unrecorded",
    "close_abandoned",
    "closed_so_far",
    "failed_for_itself",
    "outcome",
    "study_target",
]


#: After this many over-budget proposals in a row, the next trial is a uniformly drawn
#: feasible architecture. Samplers that model only COMPLETE trials (GP, QMC) never learn from
#: a rejection and would otherwise propose the same over-budget point forever.
FALLBACK_AFTER = 10
#: Uniform draws tried to find a feasible architecture before enumerating the space.
FALLBACK_DRAWS = 20_000
#: Spaces up to this size are enumerated when uniform draws find nothing feasible.
ENUMERATE_LIMIT = 2_000_000


def _architecture_attrs(
    arch: Architecture,
    budget: Budget,
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The user attributes that record a proposed architecture and its cost."""
    breakdown = cost_breakdown(arch)
    attrs: dict[str, Any] = {
        ATTR_ARCH: arch.to_json(),
        ATTR_KEY: arch.key(),
        "summary": arch.summary(),
        "cost": breakdown.to_dict(),
        "cost_model": COST_MODEL,
        "energy_model": ENERGY_MODEL,
        "weight_bits": breakdown.weight_bits,
        "depth": arch.depth,
        "timesteps": arch.timesteps,
        # flat per-layer views, readable in optuna-dashboard's trial table
        "widths": list(arch.widths),
        "wbits": list(arch.wbits),
        "abits": list(arch.abits),
    }
    if budget.bitops is not None:
        attrs["budget_bitops"] = budget.bitops
    if policy is not None:
        attrs["layer_policy"] = policy
    attrs["energy_pj"] = energy(arch).total_pj
    return attrs


#: The system attribute where Optuna < 4 kept a trial's constraint values (a list), the only
#: record optuna-dashboard 0.21 reads to tell feasible from infeasible trials.
LEGACY_CONSTRAINTS_KEY = "constraints"


def constraint_attrs(excess: float) -> dict[str, Any]:
    """The system attributes that record the budget constraint: Optuna 5's
    ``trial.set_constraint(Budget.CONSTRAINT, excess)`` (its key, ``constraints:<name>``), and
    the legacy list form, so that optuna-dashboard shows over-budget trials as infeasible.

    Optuna 5 reads both forms into ``trial.constraints`` ({"0": x, "bitops_over_budget": x}):
    every trial of a bitnas study then carries its excess twice, which leaves feasibility and
    every sampler's ranking of trials unchanged (TPE and NSGA-II compare sums of violations).
    Written with the trial's other attributes in one transaction (``attr_writes``), not
    through ``set_constraint``, which reads the trial's system attributes first to refuse a
    second value: a trial proposed here gets its constraint once.
    """
    return {f"{_CONSTRAINTS_KEY}:{Budget.CONSTRAINT}": excess, LEGACY_CONSTRAINTS_KEY: [excess]}


def _feasible_draw(
    problem: Problem, seed: int, avoid: Container[str] | None = None
) -> dict[str, Any] | None:
    """Parameters of a feasible architecture drawn uniformly (rejection sampling); where the
    feasible share is too small for that, one drawn from the enumerated feasible set. With
    ``avoid`` (architecture keys), only architectures not in it: None when none is left."""
    rng = random.Random(seed)
    space = problem.space
    avoid = avoid or ()
    for _ in range(FALLBACK_DRAWS):
        params, arch = space.sample_uniform_with_params(rng)
        if problem.budget.allows(problem.cost(arch)) and arch.key() not in avoid:
            return params
    if space.size() <= ENUMERATE_LIMIT:
        feasible = [
            p
            for p, a in space.grid_with_params()
            if problem.budget.allows(problem.cost(a)) and a.key() not in avoid
        ]
        if feasible:
            return rng.choice(feasible)
        if avoid:
            return None
    if avoid:
        return None  # too large to enumerate: the sampler goes on alone
    raise BudgetError(
        f"no architecture within the budget of {problem.budget.bitops:,.0f} BitOps in "
        f"{FALLBACK_DRAWS:,} uniform draws from the space: run `bitnas cost` to see how much of "
        "the space fits, and raise the budget or narrow the space"
    )


def _not_to_draw(trials: list[FrozenTrial], seen: Mapping[str, Any]) -> set[str]:
    """Architectures an unseen draw must not pick: those trained (``seen``), those some run is
    training now, and those that failed for what they are (training is deterministic; a trial
    abandoned by a dead run or interrupted by Ctrl-C failed for other reasons)."""
    keys = set(seen)
    for t in trials:
        key = t.user_attrs.get(ATTR_KEY)
        if key is not None and (failed_for_itself(t) or t.state == TrialState.RUNNING):
            keys.add(key)
    return keys


def sampler_exhausted(study: optuna.Study) -> bool:
    """True when the study's sampler knows that no feasible architecture it has not tried is
    left (the known-cost sampler's ``exhausted``): its repeats then end the run at once
    instead of after ``MAX_CONSECUTIVE_DUPLICATES`` of them and their unseen draws."""
    return bool(getattr(study.sampler, "exhausted", False))


def propose(
    study: optuna.Study,
    problem: Problem,
    seen: Mapping[str, FrozenTrial] | None = None,
    unseen: bool = False,
    *,
    n_trials: int | None = None,
    avoid: Container[str] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> Proposal:
    """Ask until an architecture within budget comes up; over-budget ones are told PRUNED.

    After ``FALLBACK_AFTER`` rejections in a row the next trial is enqueued with the parameters
    of a uniformly drawn feasible architecture (recorded as ``proposed_by``). ``seen`` maps
    architecture keys to completed trials: a proposal of an already trained architecture
    carries that trial as ``duplicate_of`` (training is deterministic, so its result can be
    reused instead of training twice). With ``unseen``, the first trial asked is enqueued with
    a feasible architecture not in ``seen``, not in flight and not failed (the runner's answer
    to a sampler that keeps repeating itself), where one is left.

    A runner that keeps count (``StudyView``) passes ``n_trials`` (the study's trials, which
    seed the fallback draws) and ``avoid`` (what an unseen draw must not pick); without them
    both are read from every trial of the study. ``attrs`` are user attributes the runner
    adds to every trial it asks (written with the trial's record, in the same transaction).
    """
    budget = problem.budget
    policy = problem.space.layer_policy()
    rejected = 0
    if n_trials is None:
        n_trials = len(study.get_trials(deepcopy=False))
    show_repeats(study)  # the sampler learns from repeats, stored out of the front's way
    if unseen:
        if avoid is None:
            avoid = _not_to_draw(study.get_trials(deepcopy=False), seen or {})
        params = _feasible_draw(problem, seed=problem.seed * 1_000_003 + n_trials, avoid=avoid)
        if params is not None:
            study.enqueue_trial(params, user_attrs={"proposed_by": "unseen-fallback"})
            n_trials += 1
    while True:
        if rejected and rejected % FALLBACK_AFTER == 0:
            params = _feasible_draw(problem, seed=problem.seed * 1_000_003 + n_trials + rejected)
            assert params is not None  # without ``avoid`` it finds one or raises
            study.enqueue_trial(params, user_attrs={"proposed_by": "feasible-fallback"})
        trial = study.ask()
        try:
            # the owner first: other runs wait for a young trial's record only while its
            # owner lives (see ``_unrecorded``), and sampling can take a while
            trial.set_user_attr("owner", OWNER)
            arch = problem.space.sample(trial)
            cost = float(problem.cost(arch))
            if math.isnan(cost):  # Optuna's set_constraint refuses NaN; so does the record
                raise BudgetError(
                    f"the cost function returned NaN for {arch.summary()}: a cost must be a "
                    "number (BitOps), so that the budget can be checked"
                )
            record = {**(attrs or {}), **_architecture_attrs(arch, budget, policy)}
            # the dashboard draws feasibility only for trials with values; rejected trials have none
            record["feasible"] = budget.allows(cost)
            reason = None
            if not budget.allows(cost):
                reason = f"over budget: {cost:,.0f} > {budget.bitops:,.0f} BitOps, not trained"
                record[ATTR_REJECTED] = reason
            excess = budget.excess(cost) if budget.bitops is not None else None
            # one transaction for the whole record (bitnas.search.attr_writes)
            set_trial_attrs(trial, record, None if excess is None else constraint_attrs(excess))
            if problem.artifacts is not None:
                upload_architecture(problem.artifacts, trial, arch)
            if reason is None:
                dup = (seen or {}).get(arch.key())
                return Proposal(trial, arch, cost, dup)
            label_trial(trial, f"**Infeasible** ({reason}): PRUNED before training.")
            study.tell(trial, state=TrialState.PRUNED)
        except BaseException as e:
            # Ctrl-C or an error between ask and the runner taking the trial over (sampling,
            # recording, uploading the artifact): close it rather than leave it RUNNING. (Not
            # when the storage itself is gone: the next run closes it, see close_abandoned.)
            if isinstance(e, StorageError):
                raise
            if not study._storage.get_trial(trial._trial_id).state.is_finished():
                why = "interrupted" if isinstance(e, KeyboardInterrupt) else type(e).__name__
                study._storage.set_trial_user_attr(trial._trial_id, ATTR_ERROR, f"{why}: {e}")
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
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
    if result.spike_rates is not None:
        attrs["spike_rates"] = list(result.spike_rates)
        attrs["event_energy_pj"] = energy(arch, result.spike_rates).total_pj
    for k, v in result.info.items():
        try:
            json.dumps(v)
        except TypeError:
            v = repr(v)
        attrs[k] = v
    return attrs


def tell_result(
    study: optuna.Study,
    problem: Problem,
    p: Proposal,
    result: EvalResult,
    extra: Mapping[str, Any] | None = None,
) -> FrozenTrial:
    """Record ``result`` (and the runner's ``extra`` attributes, such as the curve) on the
    trial in one write, and tell it COMPLETE (or PRUNED if stopped early). What was measured
    is recorded even when the objective is unusable (``EvaluationError``: the caller tells
    the trial FAIL)."""
    set_trial_attrs(p.trial, {**(extra or {}), **result_attrs(problem, p.arch, result)})
    objective = result.value(problem.evaluator.objective)
    if result.stopped:
        # A run cut short has truncated metrics: never let them stand as a COMPLETE result.
        return study.tell(p.trial, state=TrialState.PRUNED)
    return study.tell(p.trial, [objective, p.cost])


#: What a duplicate copies from the trial that trained its architecture: measurements only,
#: never records of how that trial came about (timing, device, proposer, budget).
MEASURED_ATTRS = (
    "test_accuracy",
    "train_loss",
    "epochs",
    "densities",
    "event_bitops",
    "spike_rates",
    "event_energy_pj",
    "plane_densities",
    "step_densities",
    "curve",
)


def tell_duplicate(study: optuna.Study, p: Proposal) -> FrozenTrial:
    """Close a proposal of an already trained architecture with that trial's results: PRUNED,
    re-telling its values in ``repeat_values`` (samplers see it COMPLETE, see
    ``bitnas.search.repeats``); a proposal of an architecture an early stopper stopped is told
    PRUNED with its curve."""
    src = p.duplicate_of
    assert src is not None
    attrs = {k: src.user_attrs[k] for k in MEASURED_ATTRS if k in src.user_attrs}
    for step, v in src.intermediate_values.items():
        p.trial.storage.set_trial_intermediate_value(p.trial._trial_id, step, v)
    attrs[ATTR_DUPLICATE] = src.number
    if src.state == TrialState.PRUNED:
        why = src.user_attrs.get(ATTR_STOPPED, "stopped early")
        attrs[ATTR_STOPPED] = f"as trial {src.number}, not trained again: {why}"
        set_trial_attrs(p.trial, attrs)
        return study.tell(p.trial, state=TrialState.PRUNED)
    assert src.values is not None
    # stored PRUNED, so the study's COMPLETE trials (the dashboard's front, best_trials) are the
    # trained ones; its sampler still sees it COMPLETE with these values (repeats.py)
    attrs[ATTR_REPEAT_VALUES] = list(src.values)
    set_trial_attrs(p.trial, attrs)
    return study.tell(p.trial, state=TrialState.PRUNED)


def tell_failure(
    study: optuna.Study,
    p: Proposal,
    exc: BaseException,
    extra: Mapping[str, Any] | None = None,
) -> FrozenTrial:
    """Tell the trial FAIL, keeping the error (message and traceback tail) on it; ``extra``
    attributes are written with them and win (a Ray worker's own traceback)."""
    if isinstance(exc, KeyboardInterrupt):
        msg = "interrupted (KeyboardInterrupt): the trial did not finish"
    else:
        msg = f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(exc)[-6:])
    set_trial_attrs(p.trial, {ATTR_ERROR: msg, "traceback": tb[-4000:], **(extra or {})})
    return study.tell(p.trial, state=TrialState.FAIL)
