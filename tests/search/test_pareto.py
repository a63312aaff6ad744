from __future__ import annotations

import numpy as np

from bitnas.search.pareto import dominates, pareto_mask

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
