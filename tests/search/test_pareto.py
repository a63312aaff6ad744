from __future__ import annotations

import numpy as np
import pytest

from bitnas.search.pareto import dominates, pareto_mask, pareto_ranks

MAXMIN = ["maximize", "minimize"]


def test_hand_computed_front():
    # (accuracy, bitops)
    pts = [(0.90, 100), (0.95, 200), (0.93, 250), (0.80, 50), (0.95, 300), (0.99, 1000)]
    assert pareto_mask(pts, MAXMIN).tolist() == [True, True, False, True, False, True]


def test_duplicates_are_both_kept_and_dominance_is_strict():
    assert pareto_mask([(0.9, 10), (0.9, 10)], MAXMIN).tolist() == [True, True]
    assert dominates((0.9, 10), (0.8, 10), MAXMIN)
    assert not dominates((0.9, 10), (0.9, 10), MAXMIN)
    assert not dominates((0.9, 20), (0.8, 10), MAXMIN)


def test_front_members_do_not_dominate_each_other():
    rng = np.random.default_rng(0)
    pts = rng.random((200, 2))
    mask = pareto_mask(pts, MAXMIN)
    front = pts[mask]
    for a in front:
        assert not any(dominates(b, a, MAXMIN) for b in pts)
    for i in np.flatnonzero(~mask):
        assert any(dominates(b, pts[i], MAXMIN) for b in front)


def test_ranks_are_the_layers_of_non_dominated_sorting():
    pts = [(0.90, 100), (0.95, 200), (0.93, 250), (0.80, 50), (0.95, 300), (0.70, 400)]
    # front: 0, 1, 3; then 2 (dominated only by 1) and 4 (only by 1); then 5 (by 2 and 4)
    assert pareto_ranks(pts, MAXMIN).tolist() == [0, 0, 1, 0, 1, 2]
    assert pareto_ranks(pts, MAXMIN, depth=2).tolist() == [0, 0, 1, 0, 1, -1]
    assert ((pareto_ranks(pts, MAXMIN, depth=1) == 0) == pareto_mask(pts, MAXMIN)).all()
    rng = np.random.default_rng(1)
    v = rng.random((300, 2))
    r = pareto_ranks(v, MAXMIN)
    assert (r >= 0).all()
    for k in range(r.max() + 1):  # layer k is the front of what layers < k leave
        rest = np.flatnonzero(r >= k)
        assert (pareto_mask(v[rest], MAXMIN) == (r[rest] == k)).all()
    assert pareto_ranks(np.empty((0, 2)), MAXMIN).tolist() == []


# -- hypervolume ------------------------------------------------------------------------------


def test_hypervolume_of_hand_computed_fronts():
    from bitnas.search.pareto import hypervolume

    # maximise accuracy, minimise cost; reference (0, 10)
    pts = [(0.5, 2.0), (0.8, 6.0)]
    # union of [2,10]x[0,0.5] and [6,10]x[0,0.8] = 8*0.5 + 4*0.3
    assert hypervolume(pts, [0.0, 10.0], MAXMIN) == pytest.approx(4.0 + 1.2)
    # a dominated point and one beyond the reference add nothing
    more = [*pts, (0.4, 7.0), (0.99, 11.0)]
    assert hypervolume(more, [0.0, 10.0], MAXMIN) == pytest.approx(5.2)
    assert hypervolume([], [0.0, 10.0], MAXMIN) == 0.0
    # three objectives, all minimised: a unit-cube corner box
    assert hypervolume(
        [(0.0, 0.0, 0.5), (0.5, 0.5, 0.0)], [1.0, 1.0, 1.0], ["minimize"] * 3
    ) == pytest.approx(0.5 + 0.25 - 0.125)


def test_front_hypervolume_uses_the_documented_reference():
    from bitnas.search.pareto import front_hypervolume

    # cost on log axis: 1 -> 0, 100 -> 1 (budget); 10 -> 0.5
    assert front_hypervolume([0.9], [10.0], budget=100.0, cost_min=1.0) == pytest.approx(0.45)
    assert front_hypervolume([1.0], [1.0], budget=100.0, cost_min=1.0) == pytest.approx(1.0)
    # a point at or over the budget contributes nothing
    assert front_hypervolume([0.99], [100.0], budget=100.0, cost_min=1.0) == 0.0
    two = front_hypervolume([0.5, 0.9], [1.0, 10.0], budget=100.0, cost_min=1.0)
    assert two == pytest.approx(0.5 * 0.5 + 0.9 * 0.5)
    with pytest.raises(ValueError, match="cost_min"):
        front_hypervolume([0.5], [1.0], budget=1.0, cost_min=1.0)


def test_two_objective_sort_agrees_with_the_pairwise_definition():
    # the O(n log n) path of two objectives against the O(n^2) definition, on small grids
    # (many ties and copies) with infinities and with three objectives as a control
    from bitnas.search.pareto import _pareto_mask_2d, _pareto_mask_pairs

    rng = np.random.default_rng(0)
    for _ in range(2000):
        n = int(rng.integers(0, 25))
        v = rng.integers(0, 5, size=(n, 2)).astype(float)
        v[rng.random(n) < 0.1] = np.inf
        v[rng.random(n) < 0.05, 0] = -np.inf
        assert _pareto_mask_2d(v).tolist() == _pareto_mask_pairs(v).tolist(), v
    assert pareto_mask([(np.inf, np.inf)], ["minimize", "minimize"]).tolist() == [True]
    pts = rng.random((300, 2))
    assert pareto_mask(pts, MAXMIN).tolist() == _pareto_mask_pairs(pts * [-1, 1]).tolist()
    nan = [(0.5, np.nan), (0.9, 10.0), (0.8, 20.0)]  # a NaN: the pairwise check decides
    assert pareto_mask(nan, MAXMIN).tolist() == [True, True, False]
