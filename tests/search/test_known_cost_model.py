"""The known-cost sampler's parts: its model of the objective (warp, trend, intervals), the
acquisition's choice, the incremental reading of a study and the budget repair."""

from __future__ import annotations

import itertools
import math

import numpy as np
import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from bitnas.search.known_cost import KnownCostSampler, front_segments
from tests.search.test_known_cost import SPACE, _acc, _cost


def test_warp_is_monotone_and_its_inverse_extends_beyond_the_observed_range():
    from bitnas.search.known_cost import Warp

    # ten sound architectures and two broken ones
    y = np.array([0.1, 0.1, 0.84, 0.85, 0.86, 0.87, 0.88, 0.88, 0.9, 0.91, 0.92, 0.93])
    w = Warp(y)
    probe = np.array([0.0, 0.05, 0.1, 0.88, 0.93, 0.95])
    z = w.forward(probe)
    assert np.all(np.diff(z) > 0)
    assert np.allclose(w.inverse(z), probe)
    # beyond the best value seen, a higher score still means a higher accuracy
    assert w.inverse(np.array([z[4] + 1.0]))[0] > 0.93
    # the broken values are compressed: they do not set the scale of the good ones
    plain = (y - y.mean()) / y.std()
    gap = lambda s: s[-1] - s[2]  # noqa: E731  (best vs worst good one)
    assert gap(w.z_obs) > 1.5 * gap(plain)
    # and good architectures keep their spacing (linear above the fence)
    good = w.forward(np.array([0.86, 0.88, 0.9]))
    assert good[1] - good[0] == pytest.approx(good[2] - good[1])


def test_warped_ehvi_matches_monte_carlo_and_the_noise_margin_discounts_ties():
    from bitnas.search.known_cost import Warp, expected_improvement_warped

    w = Warp(np.array([0.2, 0.5, 0.6, 0.7, 0.8]))
    edges, best = front_segments([0.2, 0.6], [0.6, 0.8], reference=0.0)
    mu, sd, x = np.array([0.3]), np.array([0.7]), np.array([0.1])
    draws = w.inverse(np.random.default_rng(0).normal(mu[0], sd[0], 400_000))
    width = np.clip(edges[1:] - np.maximum(edges[:-1], x[0]), 0, None)
    mc = sum(wk * np.maximum(draws - bk, 0).mean() for wk, bk in zip(width, best, strict=True))
    got = expected_improvement_warped(x, mu, sd, w, edges, best)
    assert got[0] == pytest.approx(mc, rel=0.02)
    margin = expected_improvement_warped(x, mu, sd, w, edges, best, margin=0.05)
    assert 0 < margin[0] < got[0]


def test_model_intervals_cover_held_out_values():
    """On a noisy synthetic space the fitted model's 2-sigma intervals hold most untried
    truths (the benchmark measures this on real tables)."""
    rng = np.random.default_rng(0)
    noise = {}

    def acc(p):
        k = (p["width"], p["bits"], p["act"])
        noise.setdefault(k, rng.normal(0, 0.01))
        return _acc(p) + noise[k]

    sampler = KnownCostSampler(cost=_cost, budget=512, search_space=SPACE, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    seen = []
    for _ in range(25):
        t = study.ask()
        p = {
            "width": t.suggest_int("width", 8, 64, step=8),
            "bits": t.suggest_categorical("bits", [1, 2, 4, 8]),
            "act": t.suggest_categorical("act", ["relu", "spike"]),
        }
        seen.append(p)
        study.tell(t, [acc(p), _cost(p)])
    rest = [
        dict(width=w, bits=b, act=a)
        for w, b, a in itertools.product(range(8, 65, 8), [1, 2, 4, 8], ["relu", "spike"])
        if dict(width=w, bits=b, act=a) not in seen and _cost(dict(width=w, bits=b, act=a)) <= 512
    ]
    _, lo, hi = sampler.predict(rest)
    truth = np.array([acc(p) for p in rest])
    assert np.mean((truth >= lo) & (truth <= hi)) >= 0.7


def test_random_draws_the_model_mispredicts_widen_the_intervals_leave_one_out_does_not():
    """The start-up's random draws, held out together, calibrate the intervals: where they
    lie far off what the other observations predict (the untried space differs from where
    the search went), the intervals widen; leave-one-out residuals alone miss it."""
    from bitnas.search.known_cost._surrogate import Surrogate

    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 1.0, size=(48, 2))
    y = 0.8 + 0.1 * X[:, 1] + rng.normal(0, 0.002, 48)
    test = rng.uniform(0.0, 1.0, size=(200, 2))
    fits = {}
    for name, values in (("smooth", y), ("off", y + np.r_[rng.choice([-0.03, 0.03], 8), [0] * 40])):
        for random in (None, np.arange(8)):
            sur = Surrogate(np.array([False, False]), seed=0)
            sur.fit(X, values, priority=-values, refit=True, random=random)
            fits[name, random is not None] = sur
    # a model that fits: the draws' z-scores have RMS ~1, times Student-t's small-sample
    # factor for 8 of them (t_0.975(8) / z_0.975 = 1.18)
    assert 1.0 <= fits["smooth", True].calibration < 1.5
    # the draws 15 noise sd off: leave-one-out widens a little, the held-out draws much more
    loo, held = fits["off", False], fits["off", True]
    assert held.calibration > 2.0 * loo.calibration
    _, lo_l, hi_l = loo.interval(test)
    _, lo_h, hi_h = held.interval(test)
    assert np.median((hi_h - lo_h) / (hi_l - lo_l)) > 2.0


def test_the_trend_carries_the_data_s_slope_beyond_them():
    """A constant-mean GP reverts to the observed mean away from its data; with the linear
    trend in the log cost (the last feature) the model predicts more accuracy where the
    data's slope says so."""
    from bitnas.search.known_cost._surrogate import Surrogate

    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 0.5, size=(40, 2))  # the data cover only the lower half
    y = 0.6 + 0.3 * X[:, 1] + rng.normal(0, 0.003, 40)
    sur = Surrogate(np.array([False, False]), seed=0)
    sur.fit(X, y, priority=-y, refit=True)
    far = np.array([[0.25, 1.0], [0.25, 0.0], [0.25, 0.3]])  # past the data, at 0, inside
    med, lo, hi = sur.interval(far)
    # the slope (truth 0.9; the ridge shrinks it a little), not the mean (~0.675)
    assert med[0] > y.max() + 0.05 and med[1] < y.min() + 0.02
    assert lo[2] <= 0.69 <= hi[2] and hi[2] - lo[2] < 0.05


def test_the_choice_refines_the_front_among_candidates_that_beat_the_noise():
    from bitnas.search.known_cost._acquisition import choose

    beyond = np.array([0.0, 2e-4, 1e-3, 5e-6])  # improvement beyond the noise
    plain = np.array([9e-3, 4e-3, 3e-3, 8e-3])  # any improvement
    cost = np.array([0.1, 0.2, 0.3, 0.4])
    # 0 and 3 can only tie the front within the noise: not proposed while others can
    # improve it; among those, the best expected improvement, not the largest beyond-noise
    assert choose(beyond, plain, cost, noise_only=0.01) == 1
    # ties go to the cheaper candidate
    assert choose(np.ones(3), np.ones(3), np.array([0.5, 0.2, 0.9]), noise_only=0.01) == 1
    # if no candidate beats the noise, the best expected improvement anyway
    assert choose(np.zeros(4), plain, cost, noise_only=0.01) == 0


def test_the_study_is_read_incrementally_and_agrees_with_a_full_recount():
    """Trials told, failed twice, left running and enqueued: the running totals equal a
    recount of the whole study after every step."""
    from bitnas.search.known_cost._observed import Observed

    study = optuna.create_study(directions=["maximize", "minimize"])
    obs = Observed()

    def key(t):
        return str(t.params.get("w")) if t.params else None

    def recount():
        values, taken, pending, final, failed = {}, set(), set(), set(), {}
        for t in study.get_trials(deepcopy=False):
            k = key(t)
            if k is None:
                continue
            if t.state == TrialState.FAIL:
                failed[k] = failed.get(k, 0) + 1
                if failed[k] >= 2:
                    taken.add(k)
                continue
            taken.add(k)
            if t.state == TrialState.RUNNING:
                pending.add(k)
            if t.state == TrialState.COMPLETE:
                values[k] = max(values.get(k, -math.inf), t.values[0])
                final.add(k)
        return values, taken, pending, final

    rng = np.random.default_rng(0)
    running = []
    for step in range(60):
        t = study.ask()
        if step % 7 != 3:  # some trials get no parameter before the next read
            t.suggest_int("w", 0, 15)
        running.append(t)
        if rng.random() < 0.6:
            u = running.pop(int(rng.integers(len(running))))
            if "w" not in u.params:
                u.suggest_int("w", 0, 15)
            if rng.random() < 0.2:
                study.tell(u, state=TrialState.FAIL)
            else:
                study.tell(u, [float(rng.random()), 1.0])
        assert obs.read(study, key, 0, 1.0) == recount()


def test_repair_lowers_several_choices_at_once_far_over_the_budget():
    from bitnas.search.known_cost import ProductSpace

    space = {f"bits_{i}": IntDistribution(1, 8) for i in range(20)}
    cost = lambda p: float(sum(p.values()))  # noqa: E731
    ps = ProductSpace(space, cost)
    builds = 0
    complete = ps.complete

    def counting(params, rng):
        nonlocal builds
        builds += 1
        return complete(params, rng)

    ps.complete = counting  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    done = complete({n: 8 for n in space}, rng)  # cost 160, budget 40: 120 steps of one
    fixed = ps.repair(done, 40, rng)
    assert fixed is not None and cost(fixed[0]) <= 40
    assert builds < 40  # one build per lowered choice would take 120
    assert cost(fixed[0]) > 20  # not lowered far past what the budget needs


def test_a_generated_pool_s_cost_axis_starts_at_the_space_s_cheapest_member():
    """Too large to list: the log axis's 0 is the least cost of the space (every numeric
    choice at its floor), not the cheapest random draw, and that member is a candidate while
    untried -- else the search would see no gain in going below the draws' minimum."""
    from bitnas.search.known_cost import ProductSpace
    from bitnas.search.known_cost._candidates import key_of
    from bitnas.search.known_cost._pool import Pool

    space = {f"bits_{i}": IntDistribution(1, 8) for i in range(20)}  # 8^20 members
    cost = lambda p: float(sum(p.values()))  # noqa: E731
    pool = Pool(ProductSpace(space, cost), 60.0, "log", np.random.default_rng(0))
    cheapest = {n: 1 for n in space}
    assert pool._lo == 20.0  # 256 random draws cost ~90 at the least
    assert pool.x_of([key_of(cheapest)])[0] == 0.0
    assert key_of(cheapest) in pool.candidates(set(), {}, front=[])
    assert key_of(cheapest) not in pool.candidates({key_of(cheapest)}, {}, front=[])
