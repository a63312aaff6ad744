from __future__ import annotations

import pytest

from bitnas.errors import SpecError
from bitnas.spaces.allocation import ALLOCATIONS, ORDER, allocation_of, restrict
from tests.conftest import small_space


@pytest.mark.parametrize(
    ("timesteps", "abits", "family"),
    [
        (1, (1, 1), "multibit_single_step"),
        (1, (4, 2), "multibit_single_step"),
        (4, (1, 1), "binary_spikes"),
        (2, (1, 4), "multibit_spikes"),
        (4, (2, 2), "multibit_spikes"),
    ],
)
def test_allocation_of_partitions_architectures(timesteps, abits, family):
    assert allocation_of(timesteps, abits) == family
    assert [ALLOCATIONS.get(n).contains(timesteps, abits) for n in ORDER].count(True) == 1


@pytest.mark.parametrize("family", ORDER)
def test_every_architecture_of_a_restricted_space_is_in_its_family(family):
    space = small_space(abits=(1, 2, 4), timesteps=(1, 2, 4))
    narrowed = restrict(space, family)
    archs = list(narrowed.grid())
    assert archs and len(archs) < space.size()
    assert {allocation_of(a.timesteps, a.abits) for a in archs} == {family}
    fam = ALLOCATIONS.get(family)
    # pure forms: binary everywhere, or multi-bit everywhere
    assert all(all((b == 1) == fam.binary for b in a.abits) for a in archs)


def test_restrict_names_the_missing_choice():
    with pytest.raises(SpecError, match=r"'binary_spikes' needs `timesteps` to offer a choice > 1"):
        restrict(small_space(timesteps=(1,)), "binary_spikes")
    with pytest.raises(
        SpecError, match=r"needs `abits` to offer a choice > 1, but \[space\] offers \[1\]"
    ):
        restrict(small_space(abits=(1,)), "multibit_single_step")
    with pytest.raises(SpecError, match="`allocation` must be one of"):
        restrict(small_space(), "ternary")
