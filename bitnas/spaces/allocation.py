"""Allocation families: the three ways of spending activation bits that bitnas compares.

- ``binary_spikes``: binary spiking networks, abits = 1 at every site and T > 1 steps.
- ``multibit_single_step``: single-step quantized ANNs, T = 1, multi-bit activations.
- ``multibit_spikes``: multi-level spikes, T > 1 and multi-bit activations.

Membership (``allocation_of``) partitions every architecture: T = 1 is single-step whatever
its abits; with T > 1 a network is binary if every site has abits = 1, else multi-bit spiking.
Restriction (``restrict``) narrows a space to the *pure* form of a family: binary keeps only
abits 1 and T > 1; both multi-bit families drop abits 1 entirely, so every architecture of a
restricted space belongs to its family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from bitnas._registry import Registry
from bitnas.errors import SpecError
from bitnas.spaces._base import SearchSpace
from bitnas.spaces.architecture import Architecture

__all__ = ["ALLOCATIONS", "Allocation", "allocation_of", "restrict", "structure_key"]


@dataclass(frozen=True)
class Allocation:
    """One allocation family: its name, a short label for tables and plots, and the rule
    that narrows a space's abits and timesteps choices to it."""

    name: str
    label: str
    binary: bool  # abits = 1 everywhere (else abits > 1 everywhere)
    single_step: bool  # T = 1 (else T > 1)

    def abits_choices(self, abits: Sequence[int]) -> tuple[int, ...]:
        return tuple(a for a in abits if (a == 1) == self.binary)

    def timesteps_choices(self, timesteps: Sequence[int]) -> tuple[int, ...]:
        return tuple(t for t in timesteps if (t == 1) == self.single_step)

    def contains(self, timesteps: int, abits: Sequence[int]) -> bool:
        return allocation_of(timesteps, abits) == self.name


ALLOCATIONS: Registry[Allocation] = Registry("allocation family")
for _a in (
    Allocation("binary_spikes", "binary spikes (abits=1, T>1)", binary=True, single_step=False),
    Allocation("multibit_single_step", "single-step (T=1)", binary=False, single_step=True),
    Allocation(
        "multibit_spikes", "multi-bit spikes (abits>1, T>1)", binary=False, single_step=False
    ),
):
    ALLOCATIONS.add(_a.name, _a)

#: The families in the order tables and legends list them.
ORDER = ("binary_spikes", "multibit_single_step", "multibit_spikes")


def allocation_of(timesteps: int, abits: Sequence[int]) -> str:
    """The family an architecture with these timesteps and per-site abits belongs to."""
    if timesteps == 1:
        return "multibit_single_step"
    if all(a == 1 for a in abits):
        return "binary_spikes"
    return "multibit_spikes"


def structure_key(arch: Architecture) -> tuple[object, ...]:
    """Everything about ``arch`` except its activation allocation (T and every site's abits):
    two architectures with one key differ only in how they spend activation bits, so they
    form a matched pair. Every field of every layer is in it (kind, channels, kernel, stride,
    padding, sizes, pool, graph, weight bits, ...) and whether the layer has a neuron, plus
    the input and neuron settings; a key of only (kind, out_ch, wbits) per layer makes depth
    splits such as (1, 2) and (2, 1) stages of one width collide."""
    layers = tuple(
        tuple(
            (f.name, getattr(lay, f.name) is not None)
            if f.name == "abits"
            else (f.name, getattr(lay, f.name))
            for f in dataclasses.fields(lay)
        )
        for lay in arch.layers
    )
    return (
        arch.family,
        arch.input_shape,
        arch.num_classes,
        arch.input_encoding,
        arch.input_bits,
        arch.neuron,
        layers,
    )


def architecture_allocation(arch: Architecture) -> str:
    return allocation_of(arch.timesteps, arch.abits)


def restrict(space: SearchSpace, name: str) -> SearchSpace:
    """``space`` with its abits and timesteps choices narrowed to allocation family ``name``.

    Raises SpecError when the space offers no choice the family allows (e.g. timesteps = [1]
    for a spiking family), naming the family, the field and the choices it had."""
    if name not in ALLOCATIONS:
        raise SpecError(
            f"`allocation` must be one of {list(ORDER)}, got {name!r}", field="allocation"
        )
    fam = ALLOCATIONS.get(name)
    abits = getattr(space, "abits", None)
    steps = getattr(space, "timesteps", None)
    if abits is None or steps is None or not dataclasses.is_dataclass(space):
        raise SpecError(
            f"allocation family {name!r} needs a space with `abits` and `timesteps` choices; "
            f"the {space.family} space has none"
        )
    new_abits, new_steps = fam.abits_choices(abits), fam.timesteps_choices(steps)
    want = {
        "abits": ("1" if fam.binary else "a choice > 1", new_abits, abits),
        "timesteps": ("1" if fam.single_step else "a choice > 1", new_steps, steps),
    }
    for key, (need, got, had) in want.items():
        if not got:
            raise SpecError(
                f"allocation family {name!r} needs `{key}` to offer {need}, but [space] "
                f"offers {list(had)}",
                field=key,
            )
    out: SearchSpace = dataclasses.replace(space, abits=new_abits, timesteps=new_steps)
    return out
