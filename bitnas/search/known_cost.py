"""The known-cost sampler: cost is an exact function, only accuracy is modelled.

Generic multi-objective samplers (TPE, NSGA-II/III, GP) treat BitOps as a black-box objective
to be learnt from trials, and propose over-budget or already-trained points. Yet the cost of an
architecture is known exactly before training. This sampler enumerates the finite candidate
set, drops everything over budget or already tried, fits a Gaussian-process surrogate of the
accuracy objective alone (scikit-learn, over numeric features of each candidate with the exact
log-cost among them) and proposes the candidate with the largest expected hypervolume
improvement (EHVI) of the (accuracy, cost) front.

Because cost is exact, EHVI has a closed form in two objectives: with the current front's best
accuracy ``b_k`` on each cost segment ``k`` right of the candidate's cost (width ``w_k`` on the
normalised log-cost axis), the improvement of a candidate with accuracy ``A ~ N(mu, s^2)`` is
``sum_k w_k E[max(0, A - b_k)]``, and ``E[max(0, A - b)] = (mu - b) Phi(z) + s phi(z)`` with
``z = (mu - b) / s``. No Monte Carlo, no cost model. None of Optuna's or scikit-learn's samplers
does this (BoTorch's qEHVI would model cost too), which is why it is written here.

It is a true ``optuna.samplers.BaseSampler``: pass it, with a cost function of a trial's
parameters and a budget, to any Optuna study over a finite categorical/integer space::

    sampler = KnownCostSampler(cost=lambda p: p["width"] * p["bits"], budget=512,
                               search_space={"width": IntDistribution(8, 64, step=8),
                                             "bits": CategoricalDistribution([2, 4, 8])})
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)

Running trials are counted as observed at their predicted mean ("kriging believer"), so
parallel workers (Ray) are handed different candidates.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = ["KnownCostSampler", "expected_improvement_2d", "front_segments"]

Params = Mapping[str, Any]

#: System attribute recording the candidate a trial was handed (before its parameters are all
#: suggested), so a trial asked meanwhile is not handed the same one.
CHOSEN_ATTR = "known_cost:candidate"
#: User attributes that mark a FAIL trial as closed before it ran (bitnas's ``spare``: another
#: run took the study's last place); such a trial does not count against its candidate.
NOT_RUN_ATTRS = frozenset({"spare"})

#: Once past the start-up phase, the GP's kernel hyperparameters are re-estimated at every
#: this-many-th observation (``KnownCostSampler._fit``).
REFIT_EVERY = 5


def _key(params: Params) -> str:
    return json.dumps({k: params[k] for k in sorted(params)}, default=str)


def front_segments(
    xs: Sequence[float], ys: Sequence[float], reference: float
) -> tuple[np.ndarray, np.ndarray]:
    """The attainment staircase of points (x = normalised cost in [0, 1], minimised; y =
    objective, maximised): breakpoints ``edges`` (ascending, ending at 1) and ``best[i]``, the
    best y reachable at cost <= any x in [edges[i], edges[i+1]) (``reference`` where none).
    """
    order = np.argsort(xs, kind="stable")
    edges, best = [0.0], [reference]
    for i in order:
        x, y = float(min(max(xs[i], 0.0), 1.0)), float(ys[i])
        if y <= best[-1]:
            continue
        if x == edges[-1]:
            best[-1] = y
        else:
            edges.append(x)
            best.append(y)
    edges.append(1.0)
    return np.asarray(edges), np.asarray(best)


def expected_improvement_2d(
    x: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    edges: np.ndarray,
    best: np.ndarray,
) -> np.ndarray:
    """Exact expected hypervolume improvement of candidates at normalised costs ``x`` whose
    objective is ``N(mu, sigma^2)``, over the staircase (``edges``, ``best``) of
    ``front_segments``: for each segment right of ``x``, its overlapping width times
    ``E[max(0, A - best)]``."""
    from scipy.stats import norm

    x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)[:, None]
    lo, hi = edges[None, :-1], edges[None, 1:]
    width = np.clip(hi - np.maximum(lo, x), 0.0, None)  # [n, segments]
    s = np.maximum(np.asarray(sigma, dtype=float), 1e-12)[:, None]
    d = np.asarray(mu, dtype=float)[:, None] - best[None, :]
    z = d / s
    gain = d * norm.cdf(z) + s * norm.pdf(z)
    out: np.ndarray = (width * gain).sum(axis=1)
    return out


def _space_product(space: Mapping[str, BaseDistribution]) -> list[dict[str, Any]]:
    values: list[list[Any]] = []
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values.append(list(dist.choices))
        elif isinstance(dist, IntDistribution) and not dist.log:
            values.append(list(range(dist.low, dist.high + 1, dist.step)))
        elif isinstance(dist, IntDistribution):
            values.append(list(range(dist.low, dist.high + 1)))
        else:
            raise ValueError(
                f"KnownCostSampler needs a finite space: parameter {name!r} is {dist!r}; use "
                "categorical or integer parameters (or pass `candidates`)"
            )
    return [dict(zip(space, combo, strict=True)) for combo in itertools.product(*values)]


class KnownCostSampler(BaseSampler):
    """Proposes, among feasible untried candidates, the one of best expected hypervolume
    improvement of (objective, cost), modelling only the objective.

    ``cost(params)``: the exact cost of a candidate (minimised, > 0). ``budget``: candidates
    costing more are never proposed (None: no cap). Candidates: ``candidates`` (parameter
    dicts, e.g. of a conditional space) or the product of ``search_space``; with neither,
    the search space is taken from the study's first finished trial (which this sampler then
    draws at random). ``objective``: index of the modelled value in ``trial.values`` (its
    direction is the study's). ``features(params)``: numeric features for the surrogate
    (default: the parameters, log-scaled where positive, one-hot where not numeric); the exact
    log-cost is always added. ``reference``: the objective's reference value for the
    hypervolume (default: the worst value seen, less a tenth of the observed range; bitnas
    passes 0 for accuracy). The first ``n_startup_trials`` are spread over cost quantiles at random.

    Never proposes a candidate over budget, nor one already COMPLETE, PRUNED, RUNNING or
    WAITING in the study (a FAIL one is proposed again once); the candidate handed to a trial
    is recorded on it at once (system attribute ``known_cost:candidate``), so trials asked
    before earlier ones are told still get different candidates. An enqueued trial with some
    parameters fixed gets a candidate that agrees with them. Trials are matched to
    candidates on the candidates' parameters only (an objective may suggest more). Made for
    two-objective (objective, cost) studies; a float parameter makes the space infinite, and
    the sampler then says so once and samples at random. When every feasible candidate
    has been tried it falls back to random sampling (duplicates), and says so once.
    """

    def __init__(
        self,
        cost: Callable[[Params], float],
        budget: float | None = None,
        *,
        candidates: Iterable[Params] | None = None,
        search_space: Mapping[str, BaseDistribution] | None = None,
        features: Callable[[Params], Sequence[float]] | None = None,
        objective: int = 0,
        reference: float | None = None,
        n_startup_trials: int = 8,
        seed: int | None = None,
    ) -> None:
        self._cost_fn = cost
        self._budget = budget
        self._features_fn = features
        self._objective = objective
        self._reference = reference
        self._n_startup = max(1, n_startup_trials)
        self._rng = np.random.RandomState(seed)
        self._seed = seed
        self._fallback = RandomSampler(seed=seed)
        self._space: dict[str, BaseDistribution] | None = (
            dict(search_space) if search_space is not None else None
        )
        self._cands: list[dict[str, Any]] | None = None
        if candidates is not None:
            self._set_candidates([dict(c) for c in candidates])
        elif search_space is not None:
            self._set_candidates(_space_product(search_space))
        self._warned = False
        self._kernel: Any = None
        self._unusable = ""
        self._lock = threading.Lock()

    # -- the candidate set ---------------------------------------------------------------
    def _set_candidates(self, cands: list[dict[str, Any]]) -> None:
        if not cands:
            raise ValueError("KnownCostSampler: no candidates")
        costs = np.array([float(self._cost_fn(c)) for c in cands])
        if not np.all(np.isfinite(costs)) or np.any(costs <= 0):
            raise ValueError("KnownCostSampler: cost(params) must be finite and > 0")
        ok = costs <= self._budget if self._budget is not None else np.ones(len(cands), bool)
        if not ok.any():
            raise ValueError(
                f"KnownCostSampler: no candidate within the budget of {self._budget:,} "
                f"(cheapest {costs.min():,})"
            )
        self._cands = [c for c, f in zip(cands, ok, strict=True) if f]
        self._keys = [_key(c) for c in self._cands]
        self._index = {k: i for i, k in enumerate(self._keys)}
        c = costs[ok]
        # Normalised log cost: 0 at the cheapest candidate, 1 at the budget (or the dearest).
        top = float(self._budget) if self._budget is not None else float(c.max())
        lo = float(c.min())
        span = math.log(top / lo) if top > lo else 1.0
        self._x = np.log(c / lo) / span
        self._cost_span = (lo, span)
        if self._space is None:
            self._space = self._distributions_of(self._cands)
        self._feat = self._standardise(np.array([self._features(p) for p in self._cands]))

    @staticmethod
    def _distributions_of(cands: list[dict[str, Any]]) -> dict[str, BaseDistribution]:
        """A guess for candidates given without ``search_space``: integer parameters as
        ``suggest_int`` ranges, the rest categorical. Pass ``search_space`` where the
        objective suggests otherwise (Optuna refuses a different distribution kind)."""
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

    def _features(self, p: Params) -> list[float]:
        if self._features_fn is not None:
            f = [float(v) for v in self._features_fn(p)]
        else:
            f = []
            assert self._space is not None
            for name, dist in self._space.items():
                v = p.get(name)
                choices = dist.choices if isinstance(dist, CategoricalDistribution) else None
                numeric = choices is None or all(
                    isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices
                )
                if numeric:
                    f.append(math.log(v) if isinstance(v, (int, float)) and v > 0 else -1.0)
                    f.append(0.0 if v is None else 1.0)  # present (conditional parameters)
                else:
                    assert choices is not None
                    f += [1.0 if v == c else 0.0 for c in choices]
        f.append(math.log(float(self._cost_fn(p))))
        return f

    @staticmethod
    def _standardise(f: np.ndarray) -> np.ndarray:
        keep = f.std(axis=0) > 0
        if not keep.any():  # every candidate alike (one candidate): one constant feature
            return np.zeros((len(f), 1))
        f = f[:, keep]
        out: np.ndarray = (f - f.mean(axis=0)) / f.std(axis=0)
        return out

    # -- Optuna's sampler interface ------------------------------------------------------
    def reseed_rng(self) -> None:
        self._rng.seed()
        self._fallback.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._unusable:
            return {}
        if self._cands is None:
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not done:
                return {}
            try:
                cands = _space_product(dict(done[0].distributions))
            except ValueError as e:  # a float parameter: not a finite space
                self._unusable = str(e)
                warnings.warn(f"{e}; sampling at random instead", stacklevel=2)
                return {}
            self._space = dict(done[0].distributions)
            self._set_candidates(cands)
        assert self._space is not None
        return dict(self._space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(
        self,
        study: Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        if self._cands is None or not search_space:
            return {}
        fixed = dict(trial.system_attrs.get("fixed_params", {}))
        if fixed and all(k in fixed for k in self._space or {}):
            return {}  # an enqueued trial with every parameter given: nothing to choose
        with self._lock:  # threads of one process asking at once get different candidates
            i = self._choose(study, fixed)
            if i is not None:
                study._storage.set_trial_system_attr(trial._trial_id, CHOSEN_ATTR, self._keys[i])
        if i is None:
            if not self._warned:
                warnings.warn(
                    "KnownCostSampler: every feasible candidate has been tried; sampling at "
                    "random (duplicates) from now on",
                    stacklevel=2,
                )
                self._warned = True
            return {}
        return dict(self._cands[i])

    # -- the choice ----------------------------------------------------------------------
    def _observed(self, study: Study) -> tuple[dict[int, float], set[int], set[int], set[int]]:
        """Candidate index -> objective value (as maximised) of finished trials, the indices
        not to propose (tried, running, waiting), those running or waiting, and those with a
        final (COMPLETE) value, the only ones that make the front."""
        sign = 1.0 if self._maximised(study) else -1.0
        values: dict[int, float] = {}
        taken: set[int] = set()
        pending: set[int] = set()
        final: set[int] = set()
        failed: dict[int, int] = {}
        for t in study.get_trials(deepcopy=False):
            i = self._trial_index(t)
            if i is None:  # a trial outside the candidates (another pool or space): ignored
                continue
            if t.state == TrialState.FAIL:
                if not NOT_RUN_ATTRS & t.user_attrs.keys():  # closed before it ran: no verdict
                    failed[i] = failed.get(i, 0) + 1
                    if failed[i] >= 2:
                        taken.add(i)
                continue
            taken.add(i)
            if t.state in (TrialState.RUNNING, TrialState.WAITING):
                pending.add(i)
            v: float | None = None
            if t.state == TrialState.COMPLETE and t.values is not None:
                v = t.values[self._objective]
                if math.isfinite(v):
                    final.add(i)
            elif t.state == TrialState.PRUNED and t.intermediate_values and self._objective == 0:
                # stopped early: its last value (of the first objective: the one reported per
                # epoch) tells the surrogate the architecture is poor; it is no front point
                v = t.intermediate_values[max(t.intermediate_values)]
            if v is not None and math.isfinite(v):
                values[i] = max(values.get(i, -math.inf), sign * v)
        return values, taken, pending, final

    def _trial_index(self, t: FrozenTrial) -> int | None:
        """The candidate a trial holds: the one it was handed, else the one its (or its
        enqueued) parameters name, counting only the parameters of the candidates' space."""
        chosen = t.system_attrs.get(CHOSEN_ATTR)
        if chosen is not None and chosen in self._index:
            return self._index[chosen]
        names = self._space or {}
        params = t.params if t.params else t.system_attrs.get("fixed_params", {})
        if t.state == TrialState.WAITING:
            params = {**t.system_attrs.get("fixed_params", {}), **t.params}
        if not params:
            return None
        return self._index.get(_key({k: v for k, v in params.items() if k in names}))

    def _choose(self, study: Study, fixed: Mapping[str, Any]) -> int | None:
        values, taken, pending, final = self._observed(study)
        cands = self._cands or []
        free = np.array(
            [
                i
                for i in range(len(cands))
                if i not in taken and all(cands[i].get(k, v) == v for k, v in fixed.items())
            ],
            dtype=int,
        )
        if len(free) == 0:
            return None
        if len(values) < self._n_startup:
            return self._startup(free, len(values))
        return self._ehvi(study, values, pending, final, free)

    def _startup(self, free: np.ndarray, n_seen: int) -> int:
        # Spread the first trials over cost: pick a random candidate from a random cost
        # stratum (strata are quantiles of the normalised log cost).
        strata = self._n_startup
        stratum = self._rng.randint(strata)
        lo, hi = stratum / strata, (stratum + 1) / strata
        x = self._x[free]
        pool = free[(x >= lo) & ((x < hi) | (hi >= 1.0))]
        return int(self._rng.choice(pool if len(pool) else free))

    def _ehvi(
        self,
        study: Study,
        values: dict[int, float],
        pending: set[int],
        final: set[int],
        free: np.ndarray,
    ) -> int:
        from threadpoolctl import threadpool_limits

        idx = np.array(sorted(values), dtype=int)
        y = np.array([values[i] for i in idx])
        gp = self._fit(idx, y)
        ref = self._reference
        if ref is None:  # the worst value seen, less a tenth of the range: all points count
            ref = float(y.min() - 0.1 * (np.ptp(y) or abs(y.min()) or 1.0))
        elif not self._maximised(study):
            ref = -ref
        # Running trials count as observed at their predicted mean (kriging believer), so
        # parallel workers get different candidates. Only final values make the front.
        running = np.array(sorted(pending - set(values)), dtype=int)
        on_front = np.array([i for i in idx if i in final], dtype=int)
        xs, ys = list(self._x[on_front]), [values[i] for i in on_front]
        with threadpool_limits(1):
            if len(running):
                xs += list(self._x[running])
                ys += list(gp.predict(self._feat[running]))
            mu, sd = gp.predict(self._feat[free], return_std=True)
        edges, best = front_segments(xs, ys, ref)
        score = expected_improvement_2d(self._x[free], mu, sd, edges, best)
        # ties (e.g. all zero far from the front) go to the cheaper candidate
        order = np.lexsort((self._x[free], -score))
        return int(free[order[0]])

    def _fit(self, idx: np.ndarray, y: np.ndarray) -> Any:
        """A GP (Matern 5/2, one length scale per feature, white noise) on the observed
        candidates. Kernel hyperparameters are re-estimated while data is scarce and then at
        every ``REFIT_EVERY``-th observation, reused in between: the marginal-likelihood fit
        dominates the sampler's time and barely moves from one trial to the next."""
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        from threadpoolctl import threadpool_limits

        n = len(idx)
        refit = self._kernel is None or n <= 2 * self._n_startup or n % REFIT_EVERY == 0
        if refit:
            d = self._feat.shape[1]
            kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
                length_scale=np.ones(d), length_scale_bounds=(1e-2, 1e3), nu=2.5
            ) + WhiteKernel(1e-3, (1e-6, 1e-1))
        else:
            kernel = self._kernel
        gp = GaussianProcessRegressor(
            kernel=kernel,
            normalize_y=True,
            optimizer="fmin_l_bfgs_b" if refit else None,
            random_state=int(self._rng.randint(2**31 - 1)),
        )
        # One BLAS thread: these matrices are small, and threads spinning beside the trials
        # of a busy machine made a fit 10-40x slower (measured).
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")  # convergence notes of the hyperparameter fit
            gp.fit(self._feat[idx], y)
        self._kernel = gp.kernel_
        return gp

    def _maximised(self, study: Study) -> bool:
        return study.directions[self._objective] == StudyDirection.MAXIMIZE
