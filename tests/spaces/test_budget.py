from __future__ import annotations

import pytest

from bitnas.errors import SpecError
from bitnas.spaces import Budget


def test_excess_is_the_constraint_value():
    b = Budget(1000)
    assert b.excess(900) == -100 and b.allows(900)
    assert b.excess(1000) == 0 and b.allows(1000)
    assert b.excess(1001) == 1 and not b.allows(1001)


def test_unbounded_budget_allows_everything():
    assert Budget().allows(10**30) and Budget().excess(5) == 0


@pytest.mark.parametrize("bad", [0, -5, "1e5", True, float("nan"), float("inf")])
def test_bad_budget(bad):
    with pytest.raises(SpecError, match="`bitops` must be a positive finite number"):
        Budget(bad)
