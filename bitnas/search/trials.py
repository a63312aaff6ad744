"""The life of one trial, shared by every backend: propose within budget, record, tell.

An architecture over budget is never trained: it is told PRUNED with its positive constraint
and a ``rejected`` reason, and it does not count toward the study's target of trials. TPE learns
from such trials (it ranks infeasible PRUNED trials last); NSGA-II/III, GP and QMC read only
COMPLETE trials and never see them, so after ``FALLBACK_AFTER`` rejections in a row the next
trial is a uniformly drawn feasible architecture instead (``proposed_by = feasible-fallback``).

What counts toward a study's target ("finished"): trials that trained and produced a result —
COMPLETE, or PRUNED by an early stopper. Failed trials do not count (a re-run retries them), nor
do rejected proposals, nor duplicates (a proposal of an architecture the study already trained is
told that result, as feedback for the sampler, without training again: stored PRUNED with the
values in ``repeat_values``, shown COMPLETE to the sampler, ``bitnas.search.repeats``). While the
study runs with an early stopper, a proposal of an architecture the stopper already stopped is a
duplicate too: it is told PRUNED with that trial's curve instead of being trained (training is
deterministic, so the same curve would come again, and the stopper, with at least as many
completed trials to compare with, would most likely stop it again). The stopper's settings are
not part of this: a study resumed with other settings still re-tells the stops of the earlier
ones.

A sampler can get stuck on what the study already has: NSGA-II/III's population converges on a
small space, and NSGA-II/III and GP never see PRUNED trials, so they keep proposing stopped
architectures. After ``FALLBACK_AFTER`` repeated proposals in a row (of either kind) the runner
enqueues a uniformly drawn feasible architecture the study has not trained yet
(``proposed_by = unseen-fallback``; see ``propose(unseen=True)``); a run ends as "exhausted"
(``MAX_CONSECUTIVE_DUPLICATES`` repeats in a row) only when no such architecture is left or
the space is too large to enumerate one.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import socket
import time
import traceback
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from bitnas.errors import BudgetError, StorageError
from bitnas.evaluators._base import EvalResult
from bitnas.search.artifacts import upload_architecture
from bitnas.search.labels import label_trial
from bitnas.search.problem import Problem
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
]

ATTR_ARCH = "architecture"
ATTR_KEY = "arch_key"
ATTR_REJECTED = "rejected"
ATTR_ERROR = "error"
ATTR_DUPLICATE = "duplicate_of"
#: Why an early stopper stopped the trial (it then ends PRUNED, bitnas.search.stopping).
ATTR_STOPPED = "stopped"
ATTR_RETRY = "retry_of"
ATTR_SPARE = "spare"

#: After this many over-budget proposals in a row, the next trial is a uniformly drawn
#: feasible architecture. Samplers that model only COMPLETE trials (GP, QMC) never learn from
#: a rejection and would otherwise propose the same over-budget point forever.
FALLBACK_AFTER = 10
#: Uniform draws tried to find a feasible architecture before enumerating the space.
FALLBACK_DRAWS = 20_000
#: Spaces up to this size are enumerated when uniform draws find nothing feasible.
ENUMERATE_LIMIT = 2_000_000


@dataclass(frozen=True)
class Proposal:
    trial: optuna.trial.Trial
    arch: Architecture
    cost: float
    duplicate_of: FrozenTrial | None = None


def is_rejected(t: FrozenTrial) -> bool:
    return ATTR_REJECTED in t.user_attrs


COUNT_KEYS = (
    "finished", "complete", "pruned", "failed", "retried", "duplicate", "rejected", "spare",
    "running",
)  # fmt: skip


def outcome(t: FrozenTrial) -> str:
    """The ``counts`` key of one trial (``finished`` aside: complete and pruned are)."""
    if t.state in (TrialState.RUNNING, TrialState.WAITING):
        return "running"
    if is_rejected(t):
        return "rejected"
    if ATTR_DUPLICATE in t.user_attrs:
        return "duplicate"
    if ATTR_SPARE in t.user_attrs:
        return "spare"
    if t.state == TrialState.FAIL:
        return "failed"
    return "complete" if t.state == TrialState.COMPLETE else "pruned"


def counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by outcome; ``finished`` (complete + pruned) is what counts toward a target.
    A FAIL trial whose architecture a later trial trained to the end (the retry of an
    abandoned or interrupted trial) is ``retried``, not ``failed``: nothing is left to retry."""
    c = dict.fromkeys(COUNT_KEYS, 0)
    trained = {
        t.user_attrs.get(ATTR_KEY)
        for t in trials
        if ATTR_DUPLICATE not in t.user_attrs
        and (t.state == TrialState.COMPLETE or stopped_early(t))
    }
    for t in trials:
        what = outcome(t)
        if what == "failed" and t.user_attrs.get(ATTR_KEY) in trained:
            what = "retried"
        c[what] += 1
        if what in ("complete", "pruned"):
            c["finished"] += 1
    return c


def stopped_early(t: FrozenTrial) -> bool:
    """PRUNED by an early stopper after training (not a rejection, not a re-told duplicate)."""
    return (
        t.state == TrialState.PRUNED
        and ATTR_STOPPED in t.user_attrs
        and ATTR_DUPLICATE not in t.user_attrs
    )


def evaluated_keys(trials: list[FrozenTrial], stopped: bool = False) -> dict[str, FrozenTrial]:
    """Architecture key -> first COMPLETE trial that trained it; with ``stopped`` (the study
    runs with an early stopper), also -> the first trial a stopper stopped, for architectures
    no trial completed."""
    seen: dict[str, FrozenTrial] = {}
    early: dict[str, FrozenTrial] = {}
    for t in trials:
        key = t.user_attrs.get(ATTR_KEY)
        if not key:
            continue
        if t.state == TrialState.COMPLETE and key not in seen:
            seen[key] = t
        elif stopped and stopped_early(t) and key not in early:
            early[key] = t
    return {**early, **seen}


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (state first), [] where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, Linux), "" where unknown: with
    the PID it names one process, even after the PID is reused."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


OWNER = f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"
ORPHAN_AFTER_S = 60.0


def close_abandoned(study: optuna.Study) -> int:
    """Close, as FAIL, the RUNNING trials whose run is gone: owned by a process of this host
    that no longer exists (a ``kill -9``, a crash). Returns how many were closed.

    Trials owned by live processes or other hosts are left alone, so two runs on one study do
    not close each other's trials. A RUNNING trial with no owner, older than
    ``ORPHAN_AFTER_S``, is closed too: bitnas records the owner right after asking, so such a
    trial was cut off in between. The architecture of a closed trial is enqueued
    (``retry_of`` names the closed trial), so the next trial asked re-runs it.
    """
    host = socket.gethostname()
    closed = 0
    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        name, pid, started = [*str(t.user_attrs.get("owner", "")).split(":"), "", "", ""][:3]
        orphan = (
            "owner" not in t.user_attrs
            and t.datetime_start is not None
            and ((now - t.datetime_start).total_seconds() > ORPHAN_AFTER_S)
        )
        if not orphan and (name != host or not pid.isdigit() or _alive(int(pid), started)):
            continue
        pid = pid or "unknown"
        study._storage.set_trial_user_attr(
            t._trial_id, ATTR_ERROR, f"abandoned: the run that owned it (pid {pid}) is gone"
        )
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        if t.params and ATTR_KEY in t.user_attrs:
            # its architecture was never measured: the next trial asked trains it
            study.enqueue_trial(t.params, user_attrs={ATTR_RETRY: t.number})
        closed += 1
    _CLOSED[0] += closed
    return closed


#: How many trials ``close_abandoned`` closed in this process, all runs together.
_CLOSED = [0]


def closed_so_far() -> int:
    """Trials ``close_abandoned`` has closed in this process so far: a run's difference of it
    is what that run closed."""
    return _CLOSED[0]


def _alive(pid: int, started: str = "") -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    fields = _stat(pid)
    if fields[:1] == ["Z"]:  # a zombie: dead, not yet reaped by its parent
        return False
    # the PID exists; it is the owner only if it also started when the owner did
    now = fields[19] if len(fields) > 19 else ""
    return not (started and now and now != started)


def _live_elsewhere(t: FrozenTrial) -> bool:
    """Owned by another run of this host that is still alive. (Runs on other hosts cannot be
    checked from here; they are not waited for, see ``wait_for_twin``.)"""
    owner = str(t.user_attrs.get("owner", ""))
    name, pid, started = [*owner.split(":"), "", "", ""][:3]
    if owner == OWNER or name != socket.gethostname() or not pid.isdigit():
        return False
    return _alive(int(pid), started)


def in_flight_elsewhere(trials: list[FrozenTrial]) -> int:
    """How many trials other live runs of this host are training now, or have just asked and
    not recorded yet (see ``_unrecorded``): a run that counts them toward its target stops at
    the target instead of overshooting it."""
    return sum(1 for t in trials if _ahead(t))


def _twin(trials: list[FrozenTrial], p: Proposal, stopped: bool = False) -> FrozenTrial | None:
    key, mine = p.arch.key(), p.trial.number
    same = [t for t in trials if t.user_attrs.get(ATTR_KEY) == key and t.number != mine]
    for t in same:
        if t.state == TrialState.COMPLETE and ATTR_DUPLICATE not in t.user_attrs:
            return t
    if stopped:
        early = next((t for t in same if stopped_early(t)), None)
        if early is not None:
            return early
    # the lowest number trains, higher ones wait: two runs that proposed the same
    # architecture at once never wait for each other
    running = [t for t in same if t.state == TrialState.RUNNING and t.number < mine]
    return next((t for t in running if _live_elsewhere(t)), None)


def _unrecorded(t: FrozenTrial) -> bool:
    """A trial between ``ask`` and recording its architecture in another run: its owner is
    another live run of this host, or not written yet and the trial is younger than
    ``ORPHAN_AFTER_S`` (bitnas writes it right after asking)."""
    if ATTR_KEY in t.user_attrs:
        return False
    if "owner" in t.user_attrs:
        return _live_elsewhere(t)
    started = t.datetime_start
    return started is not None and (
        (datetime.datetime.now() - started).total_seconds() <= ORPHAN_AFTER_S
    )


def _ahead(t: FrozenTrial) -> bool:
    """On its way to a result in another live run of this host: RUNNING, and recorded (and
    not over budget: that one is about to be told PRUNED) or about to be (``_unrecorded``)."""
    if t.state != TrialState.RUNNING:
        return False
    if ATTR_KEY not in t.user_attrs:
        return _unrecorded(t)
    return t.user_attrs.get("feasible") is not False and _live_elsewhere(t)


def study_target(finished: int, n_trials: int, target: int | None) -> int:
    """The study's target of finished trials for a run that starts with ``finished`` of them:
    ``target`` where the caller fixed it, else ``n_trials`` more. A caller that counted the
    study earlier must pass the target it derived, not the difference: runs that share the
    study finish trials in between (loading data takes seconds), and a target re-derived from
    a later count overshoots by what they finished (measured: 17 for 16 with 4 runs on one
    PostgreSQL study)."""
    return finished + n_trials if target is None else target


def target_covered(
    trials: list[FrozenTrial], p: Proposal, target: int, finished: int | None = None
) -> bool:
    """Whether the study's finished trials and the lower-numbered trials other runs of this
    host have under way already make ``target``: then ``p`` is spare. Two runs that both saw
    the target one short before either asked a trial would otherwise both train one; with
    this rule the higher number gives way and the lowest never does, so runs on one host
    together stop at the target. ``finished``: the study's finished trials where the caller
    keeps count (``StudyView``); ``trials`` then need hold only the unfinished ones."""
    mine = p.trial.number
    ahead = sum(1 for t in trials if t.number < mine and _ahead(t))
    done = counts(trials)["finished"] if finished is None else finished
    return done + ahead >= target


def tell_spare(study: optuna.Study, p: Proposal) -> FrozenTrial:
    """Close a proposal that ``target_covered`` found not needed: FAIL (every sampler ignores
    FAIL trials, so it says nothing about the architecture), with the reason in ``spare``."""
    p.trial.set_user_attr(
        ATTR_SPARE, "not trained: trials under way in other runs reach the study's target"
    )
    return study.tell(p.trial, state=TrialState.FAIL)


def _recording(trials: list[FrozenTrial], p: Proposal) -> bool:
    """Whether a lower-numbered trial of another run is still between ``ask`` and recording
    its architecture: it may be ``p``'s twin, and its run, the lower number, will not wait
    for ``p``. Without this, two runs that ask the same architecture within
    milliseconds could both miss the other and train it twice."""
    return any(
        t.number < p.trial.number and t.state == TrialState.RUNNING and _unrecorded(t)
        for t in trials
    )


def wait_for_twin(
    study: optuna.Study,
    p: Proposal,
    poll: float = 0.5,
    stopped: bool = False,
    look: Callable[[str], list[FrozenTrial]] | None = None,
) -> FrozenTrial | None:
    """Across processes: the COMPLETE trial that already trained ``p``'s architecture (reuse
    it), or None (train it here); with ``stopped`` (the study has an early stopper), also a
    trial the stopper stopped. While another live run of this host trains it, wait for that
    trial; if it fails or its run dies (or it is stopped, without ``stopped``), train it here.
    While a lower-numbered trial of another run has not recorded its architecture yet, wait
    for the record (milliseconds): it may be the same one.

    Runs on other hosts are not waited for (their liveness cannot be checked, and waiting on
    a dead one would hang): an architecture both train at once is trained twice.

    ``look(key)``, where given, returns the trials to judge by, fresh on each call: the one
    that trained the architecture and those under way (``StudyView.twin_trials``) instead of
    every trial of the study."""
    while True:
        trials = look(p.arch.key()) if look is not None else study.get_trials(deepcopy=False)
        twin = _twin(trials, p, stopped)
        if twin is not None and twin.state.is_finished():
            return twin
        if twin is None and not _recording(trials, p):
            return None
        time.sleep(poll)
        close_abandoned(study)


def _record_architecture(
    trial: optuna.trial.Trial,
    arch: Architecture,
    budget: Budget,
    policy: dict[str, Any] | None = None,
) -> None:
    breakdown = cost_breakdown(arch)
    trial.set_user_attr(ATTR_ARCH, arch.to_json())
    trial.set_user_attr(ATTR_KEY, arch.key())
    trial.set_user_attr("summary", arch.summary())
    trial.set_user_attr("cost", breakdown.to_dict())
    trial.set_user_attr("cost_model", COST_MODEL)
    trial.set_user_attr("energy_model", ENERGY_MODEL)
    trial.set_user_attr("weight_bits", breakdown.weight_bits)
    trial.set_user_attr("depth", arch.depth)
    trial.set_user_attr("timesteps", arch.timesteps)
    # flat per-layer views, readable in optuna-dashboard's trial table
    trial.set_user_attr("widths", list(arch.widths))
    trial.set_user_attr("wbits", list(arch.wbits))
    trial.set_user_attr("abits", list(arch.abits))
    if budget.bitops is not None:
        trial.set_user_attr("budget_bitops", budget.bitops)
    if policy is not None:
        trial.set_user_attr("layer_policy", policy)
    trial.set_user_attr("energy_pj", energy(arch).total_pj)


#: The system attribute where Optuna < 4 kept a trial's constraint values (a list), the only
#: record optuna-dashboard 0.21 reads to tell feasible from infeasible trials.
LEGACY_CONSTRAINTS_KEY = "constraints"


def _set_legacy_constraint(trial: optuna.trial.Trial, excess: float) -> None:
    """Record the budget constraint a second time, in the legacy list form, so that
    optuna-dashboard shows over-budget trials as infeasible.

    Optuna 5 reads both forms into ``trial.constraints`` ({"0": x, "bitops_over_budget": x}):
    every trial of a bitnas study then carries its excess twice, which leaves feasibility and
    every sampler's ranking of trials unchanged (TPE and NSGA-II compare sums of violations).
    """
    trial.storage.set_trial_system_attr(trial._trial_id, LEGACY_CONSTRAINTS_KEY, [excess])


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


def failed_for_itself(t: FrozenTrial) -> bool:
    """FAIL with an error of its own: not abandoned by a dead run, not interrupted."""
    error = str(t.user_attrs.get(ATTR_ERROR, ""))
    return (
        t.state == TrialState.FAIL
        and bool(error)
        and not error.startswith(("abandoned", "interrupted"))
    )


def propose(
    study: optuna.Study,
    problem: Problem,
    seen: Mapping[str, FrozenTrial] | None = None,
    unseen: bool = False,
    *,
    n_trials: int | None = None,
    avoid: Container[str] | None = None,
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
    both are read from every trial of the study.
    """
    budget = problem.budget
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
            _record_architecture(trial, arch, budget, problem.space.layer_policy())
            if budget.bitops is not None:
                trial.set_constraint(Budget.CONSTRAINT, budget.excess(cost))
                _set_legacy_constraint(trial, budget.excess(cost))
            # the dashboard draws feasibility only for trials with values; rejected trials have none
            trial.set_user_attr("feasible", budget.allows(cost))
            if problem.artifacts is not None:
                upload_architecture(problem.artifacts, trial, arch)
            if budget.allows(cost):
                dup = (seen or {}).get(arch.key())
                return Proposal(trial, arch, cost, dup)
            reason = f"over budget: {cost:,.0f} > {budget.bitops:,.0f} BitOps, not trained"
            trial.set_user_attr(ATTR_REJECTED, reason)
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
    for k in MEASURED_ATTRS:
        if k in src.user_attrs:
            p.trial.set_user_attr(k, src.user_attrs[k])
    for step, v in src.intermediate_values.items():
        p.trial.storage.set_trial_intermediate_value(p.trial._trial_id, step, v)
    p.trial.set_user_attr(ATTR_DUPLICATE, src.number)
    if src.state == TrialState.PRUNED:
        why = src.user_attrs.get(ATTR_STOPPED, "stopped early")
        p.trial.set_user_attr(ATTR_STOPPED, f"as trial {src.number}, not trained again: {why}")
        return study.tell(p.trial, state=TrialState.PRUNED)
    assert src.values is not None
    # stored PRUNED, so the study's COMPLETE trials (the dashboard's front, best_trials) are the
    # trained ones; its sampler still sees it COMPLETE with these values (repeats.py)
    p.trial.set_user_attr(ATTR_REPEAT_VALUES, list(src.values))
    return study.tell(p.trial, state=TrialState.PRUNED)


def tell_failure(study: optuna.Study, p: Proposal, exc: BaseException) -> FrozenTrial:
    """Tell the trial FAIL, keeping the error (message and traceback tail) on it."""
    if isinstance(exc, KeyboardInterrupt):
        msg = "interrupted (KeyboardInterrupt): the trial did not finish"
    else:
        msg = f"{type(exc).__name__}: {exc}"
    p.trial.set_user_attr(ATTR_ERROR, msg)
    tb = "".join(traceback.format_exception(exc)[-6:])
    p.trial.set_user_attr("traceback", tb[-4000:])
    return study.tell(p.trial, state=TrialState.FAIL)
