from __future__ import annotations

import pytest

from bitnas.errors import SpecError
from bitnas.spaces.allocation import ALLOCATIONS, ORDER, allocation_of, restrict, structure_key
from bitnas.spaces.cnn import CNN1DSpace
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


def test_structure_key_covers_every_layer_depth_splits_stay_apart():
    space = CNN1DSpace(
        input_shape=(1, 40),
        num_classes=10,
        stages=(2, 2),
        depth=(1, 2),
        width=(8,),
        kernel=(5,),
        wbits=(4,),
        wbits_per_layer=False,
        abits=(1, 2),
        abits_per_layer=False,
        first_wbits=8,
        last_wbits=8,
        timesteps=(1, 2),
    )
    archs = list(space.grid())
    assert len(archs) == 16  # depth splits (1,1) (1,2) (2,1) (2,2) x abits 2 x T 2

    def old(a):  # the key bench/table_allocation.py used: (kind, out_ch, wbits) per layer
        return tuple((lay.kind, lay.out_ch, lay.wbits) for lay in a.layers)

    split_12 = next(a for a in archs if a.timesteps == 1 and a.abits == (1, 1, 1)
                    and a.layers[0].pool == 2)
    split_21 = next(a for a in archs if a.timesteps == 1 and a.abits == (1, 1, 1)
                    and a.layers[0].pool == 1)
    assert old(split_12) == old(split_21)  # one width, three convs: the old key collides
    assert structure_key(split_12) != structure_key(split_21)
    groups: dict[object, set[tuple[int, tuple[int, ...]]]] = {}
    for a in archs:
        groups.setdefault(structure_key(a), set()).add((a.timesteps, a.abits))
    assert len(groups) == 4 and len({old(a) for a in archs}) == 3
    # each structure holds exactly the four activation allocations: matched pairs
    assert all(len(acts) == 4 for acts in groups.values())
