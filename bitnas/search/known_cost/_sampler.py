"""The known-cost sampler: cost is an exact function, only the objective is modelled."""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from bitnas.search.known_cost._acquisition import (
    choose,
    expected_improvements_warped,
    front_segments,
)
from bitnas.search.known_cost._candidates import CandidateSpace, ProductSpace, key_of
from bitnas.search.known_cost._observed import NOT_RUN_ATTRS, Observed
from bitnas.search.known_cost._pool import Pool
from bitnas.search.known_cost._surrogate import Surrogate

__all__ = ["CHOSEN_ATTR", "NOT_RUN_ATTRS", "KnownCostSampler"]

Params = Mapping[str, Any]

#: System attribute recording the candidate a trial was handed (before its parameters are all
#: suggested), so a trial asked meanwhile is not handed the same one.
CHOSEN_ATTR = "known_cost:candidate"
#: Once past the start-up phase, the hyperparameters are re-estimated at every this-many-th
#: observation (and at every one while data is scarce); in between only the posterior is
#: updated, which is what bounds an ask's time.
REFIT_EVERY = 10
#: Multiples of the model's noise an improvement must exceed to count as one.
NOISE_MARGIN = 1.0
#: A candidate whose expected improvement beyond the noise is below this share of the best
#: one's cannot improve the front by more than noise: it is not proposed while others can.
NOISE_ONLY = 0.01


class KnownCostSampler(BaseSampler):
    """Proposes, among feasible untried candidates, the one of best expected hypervolume
    improvement of (objective, cost), modelling only the objective.

    ``cost(params)``: the exact cost of a candidate (minimised, > 0). ``budget``: candidates
    costing more are never proposed (None: no cap). The space: ``space`` (a
    ``CandidateSpace``, e.g. bitnas's conditional spaces), or ``search_space`` (fixed Optuna
    distributions), or ``candidates`` (an explicit list of parameter dicts); with none, the
    search space of the study's first finished trial. Spaces up to 100,000 members are
    enumerated; larger ones get a pool generated at every ask around the current front (local
    moves, crossover, feasible random draws, each repaired to the budget).
    ``objective``: index of the modelled value in ``trial.values`` (direction: the study's).
    ``features(params)``: numeric features for the surrogate (default: the parameters); the
    log cost is always added. ``cost_axis``: the hypervolume's cost axis the acquisition
    maximises, ``"log"`` (normalised log cost, 0 at the cheapest, 1 at the budget) or
    ``"linear"`` (cost / budget), as the study reports it. ``reference``: the objective's
    reference value (default: the worst point of the observed front less a tenth of its
    range). The first ``n_startup_trials`` are spread over cost at random.

    The surrogate is a Gaussian process on the objective's robust scores (bounded subsample,
    ``_surrogate``); the acquisition is the expected hypervolume improvement beyond the
    model's noise (``_acquisition``), so a candidate that can only tie the front is not spent
    while others may improve it. Never proposes a candidate over budget, nor one already
    COMPLETE, PRUNED, RUNNING or WAITING in the study (a FAIL one is proposed again once); the
    candidate handed to a trial is recorded on it at once (system attribute
    ``known_cost:candidate``), so trials asked before earlier ones are told get different
    ones, and running trials count at their predicted value (kriging believer). An enqueued
    trial with some parameters fixed gets a candidate that agrees with them. When no feasible
    untried candidate is left the sampler is ``exhausted``: it says so once and re-proposes
    the best candidate tried (never one over budget), which bitnas's runner answers as a
    repeat and then ends the run "exhausted".
    """

    def __init__(
        self,
        cost: Callable[[Params], float] | None = None,
        budget: float | None = None,
        *,
        space: CandidateSpace | None = None,
        candidates: Iterable[Params] | None = None,
        search_space: Mapping[str, BaseDistribution] | None = None,
        features: Callable[[Params], Sequence[float]] | None = None,
        objective: int = 0,
        reference: float | None = None,
        cost_axis: Literal["log", "linear"] = "log",
        n_startup_trials: int = 8,
        seed: int | None = None,
    ) -> None:
        if cost_axis not in ("log", "linear"):
            raise ValueError(f"cost_axis must be 'log' or 'linear', got {cost_axis!r}")
        if space is None and cost is None:
            raise ValueError("KnownCostSampler needs `cost` (or a `space` that knows it)")
        self._cost_fn = cost
        self._budget = budget
        self._features_fn = features
        self._objective = objective
        self._reference = reference
        self._axis = cost_axis
        self._n_startup = max(1, n_startup_trials)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._fallback = RandomSampler(seed=seed)
        self._pool: Pool | None = None
        self._unusable = ""
        self._lock = threading.Lock()
        self._observed = Observed()
        self._surrogate: Surrogate | None = None
        self._fits = 0
        self._chosen: dict[int, dict[str, Any]] = {}
        self._warned = False
        self.exhausted = False
        if space is not None:
            self._set_space(space, None)
        elif candidates is not None:
            assert cost is not None
            cands = [dict(c) for c in candidates]
            dists = dict(search_space) if search_space else _distributions_of(cands)
            self._set_space(ProductSpace(dists, cost, features), cands)
        elif search_space is not None:
            assert cost is not None
            self._set_space(ProductSpace(search_space, cost, features), None)

    def _set_space(self, space: CandidateSpace, cands: list[dict[str, Any]] | None) -> None:
        self._pool = Pool(space, self._budget, self._axis, self._rng, candidates=cands)

    # -- Optuna's sampler interface ------------------------------------------------------
    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._fallback.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._unusable:
            return {}
        if self._pool is None:
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not done:
                return {}
            assert self._cost_fn is not None
            try:
                space = ProductSpace(dict(done[0].distributions), self._cost_fn, self._features_fn)
            except ValueError as e:  # a float parameter: not a finite space
                self._unusable = str(e)
                warnings.warn(f"{e}; sampling at random instead", stacklevel=2)
                return {}
            self._set_space(space, None)
        assert self._pool is not None
        return self._pool.space.distributions()

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        # a conditional parameter outside the relative space: the chosen candidate has it
        chosen = self._chosen.get(trial._trial_id, {})
        if param_name in chosen and param_distribution._contains(
            param_distribution.to_internal_repr(chosen[param_name])
        ):
            return chosen[param_name]
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(
        self,
        study: Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        if self._pool is None or not search_space:
            return {}
        fixed = dict(trial.system_attrs.get("fixed_params", {}))
        names = self._pool.space.distributions()
        if fixed and all(k in fixed for k in names):
            return {}  # an enqueued trial with every parameter given: nothing to choose
        with self._lock:  # threads of one process asking at once get different candidates
            params = self._choose(study, fixed)
            if params is not None:
                study._storage.set_trial_system_attr(trial._trial_id, CHOSEN_ATTR, key_of(params))
        if params is None:
            return {}
        self._chosen[trial._trial_id] = params
        return {k: v for k, v in params.items() if k in search_space}

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._chosen.pop(trial._trial_id, None)

    def predict(
        self, params: Sequence[Params], k: float = 2.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model's (median, lower, upper) objective at each parameter set, the bounds
        ``k`` standard deviations out in the warped space (as maximised; negate for a
        minimised objective), from the fit of the last ask. Raises if the model has not been
        fitted yet (the start-up trials use none)."""
        if self._surrogate is None or self._pool is None:
            raise RuntimeError("KnownCostSampler: no model yet (still in the start-up trials)")
        keys = [key_of(p) for p in params]
        unknown = [k_ for k_ in keys if not self._pool.known(k_)]
        if unknown:
            raise ValueError(f"not a member of the sampler's space: {unknown[0]}")
        return self._surrogate.interval(self._pool.features_of(keys), k)

    # -- the choice ----------------------------------------------------------------------
    def _trial_key(self, t: FrozenTrial) -> str | None:
        """The candidate a trial holds: the one it was handed, else the one its (or its
        enqueued) parameters name, counting only the parameters of the candidates' space."""
        chosen = t.system_attrs.get(CHOSEN_ATTR)
        if chosen is not None:
            return str(chosen)
        assert self._pool is not None
        names = self._pool.space.distributions()
        params = t.params if t.params else t.system_attrs.get("fixed_params", {})
        if t.state == TrialState.WAITING:
            params = {**t.system_attrs.get("fixed_params", {}), **t.params}
        params = {k: v for k, v in params.items() if k in names}
        return key_of(params) if params else None

    def _choose(self, study: Study, fixed: Mapping[str, Any]) -> dict[str, Any] | None:
        assert self._pool is not None
        sign = 1.0 if study.directions[self._objective] == StudyDirection.MAXIMIZE else -1.0
        values, taken, pending, final = self._observed.read(
            study, self._trial_key, self._objective, sign
        )
        pool = self._pool
        observed = {k: v for k, v in values.items() if pool.known(k)}
        if len(observed) < self._n_startup:
            pick = pool.startup(taken, fixed, self._n_startup)
        else:
            pick = self._ehvi(observed, pending, final, taken, fixed, sign)
        if pick is not None:
            return pick
        self.exhausted = True
        if not self._warned:
            warnings.warn(
                "KnownCostSampler: every feasible candidate has been tried; re-proposing the "
                "best one tried (never one over budget)",
                stacklevel=3,
            )
            self._warned = True
        return pool.best_tried(observed, fixed)

    def _ehvi(
        self,
        values: dict[str, float],
        pending: set[str],
        final: set[str],
        taken: set[str],
        fixed: Mapping[str, Any],
        sign: float,
    ) -> dict[str, Any] | None:
        from threadpoolctl import threadpool_limits

        pool = self._pool
        assert pool is not None
        keys = list(values)
        y = np.array([values[k] for k in keys])
        ids = pool.ids(keys)
        x = pool.x_at(ids)
        on_front = [i for i, k in enumerate(keys) if k in final]
        front_x, front_y = x[on_front], y[on_front]
        # a point's gap below the staircase of the others: the surrogate conditions on the
        # observations nearest the front first
        edges0, best0 = front_segments(list(front_x), list(front_y), -math.inf)
        seg = np.clip(np.searchsorted(edges0, x, side="right") - 1, 0, len(best0) - 1)
        stair = best0[seg]
        gap = np.where(np.isfinite(stair), stair - y, 0.0)
        if self._surrogate is None:
            self._surrogate = Surrogate(
                pool.space.is_categorical,
                seed=self._seed,
                trend_column=pool.space.log_cost_column,
            )
        n = len(keys)
        refit = self._fits == 0 or n <= 4 * self._n_startup or n % REFIT_EVERY == 0
        with threadpool_limits(1):
            # the start-up trials (the first folded: none is chosen by the model before
            # n_startup are observed) are random draws: they calibrate the intervals
            random = np.arange(min(self._n_startup, n))
            self._surrogate.fit(pool.features_at(ids), y, gap, refit=refit, random=random)
            self._fits += 1
            cand = pool.candidates(taken, fixed, front=[keys[i] for i in on_front])
            if not cand:
                return None
            sur = self._surrogate
            running = [k for k in pending if k not in values and pool.known(k)]
            xs, ys = list(front_x), list(front_y)
            if running:  # kriging believer: running trials count at their predicted value
                med, _, _ = sur.interval(pool.features_of(running))
                xs += list(pool.x_of(running))
                ys += list(med)
            cand_ids = pool.ids(cand)
            mu, sd = sur.predict(pool.features_at(cand_ids))
        ref = self._reference_value(front_y, sign)
        edges, best = front_segments(xs, ys, ref)
        assert sur.warp is not None
        # noise in objective units at each step of the staircase: the warp's local slope
        # times the model's noise
        warp = sur.warp
        zb = warp.forward(best)
        margin = np.maximum(warp.inverse(zb + NOISE_MARGIN * sur.noise_sd_z) - best, 0.0)
        cx = pool.x_at(cand_ids)
        score, plain = expected_improvements_warped(cx, mu, sd, warp, edges, best, [margin, 0.0])
        i = choose(score, plain, cx, NOISE_ONLY)
        return pool.params_of(cand[i])

    def _reference_value(self, front_y: np.ndarray, sign: float) -> float:
        if self._reference is not None:
            return sign * self._reference
        if len(front_y) == 0:
            return -math.inf
        span = float(np.ptp(front_y)) or abs(float(front_y.max())) or 1.0
        return float(front_y.min() - 0.1 * span)


def _distributions_of(cands: list[dict[str, Any]]) -> dict[str, BaseDistribution]:
    """A guess for candidates given without ``search_space``: integer parameters as
    ``suggest_int`` ranges, the rest categorical. Pass ``search_space`` where the objective
    suggests otherwise (Optuna refuses a different distribution kind)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    seen: dict[str, list[Any]] = {}
    for c in cands:
        for k, v in c.items():
            if v not in seen.setdefault(k, []):
                seen[k].append(v)
    out: dict[str, BaseDistribution] = {}
    for k, vs in seen.items():
        if all(isinstance(v, int) and not isinstance(v, bool) for v in vs):
            out[k] = IntDistribution(min(vs), max(vs))
        else:
            out[k] = CategoricalDistribution(vs)
    return out
