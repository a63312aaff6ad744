"""The NAS-Bench-201 benchmark's table, cost model and protocol (bench/nasbench201.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
nb = pytest.importorskip("nasbench201")


def test_cell_sizes_are_the_published_extremes():
    # no convolution in the cell: stem, reductions and classifier only; six 3x3 convolutions:
    # NAS-Bench-201's largest network (1.53 MB of weights)
    assert nb.cell_params(("none",) * 6) == 73_306
    assert nb.cell_params(("skip_connect", "avg_pool_3x3") * 3) == 73_306
    assert nb.cell_params(("nor_conv_3x3",) * 6) == 1_531_546
    one = nb.cell_params(("nor_conv_1x1",) + ("none",) * 5) - 73_306
    assert one == 5 * sum(c * c + 2 * c for c in (16, 32, 64))


def test_table_has_every_cell_and_its_operation_codes_read_right():
    table = nb.load_table()
    assert len(table) == 5**6
    code = {op: i for i, op in enumerate(nb.OPS)}
    assert table[(code["none"],) * 6] == pytest.approx(0.10)  # no path to the output
    assert table[(code["nor_conv_3x3"],) * 6] > table[(code["nor_conv_1x1"],) * 6] > 0.85
    assert max(table.values()) < 0.95


def test_a_short_known_cost_study_stays_in_budget_and_its_hypervolume_grows():
    bench = nb.Benchmark()
    assert len(bench.feasible) == sum(c <= bench.budget for c in bench.cost.values())
    r = bench.run("known-cost", seed=0, trials=25)
    assert r["over_budget"] == 0 and r["repeats"] == 0
    assert all(b >= a for a, b in zip(r["hv"], r["hv"][1:], strict=False))
    assert 0 < r["hv"][-1] <= 1.0
