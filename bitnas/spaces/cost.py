"""The one cost model of docs/design.md, as pure functions of an :class:`Architecture`.

For layer l, ``MACs_l`` are the multiply-accumulates of one sample at one timestep. The bits fed
to layer l over a whole forward pass (all T steps) are

* first layer: ``input_bits`` under direct encoding (the analog input is seen once and its
  current reused at every step), ``T`` under rate encoding (T binary frames);
* any later layer: ``abits_(l-1) * T``.

Dense BitOps_l = MACs_l * wbits_l * in_bits_l. Event BitOps_l replaces in_bits_l with the measured
mean number of 1-bits an input of layer l carries (its bit density times in_bits_l): the cost of a
bit-serial, event-driven implementation that skips zero bits. Full precision counts as 32 bits.
Pooling, residual adds and neuron updates are not BitOps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bitnas.errors import SpecError
from bitnas.spaces.architecture import Architecture, LayerSpec

__all__ = [
    "COST_MODEL",
    "CostBreakdown",
    "bitops",
    "cost_breakdown",
    "event_bitops",
    "in_bits",
    "layer_bitops",
    "layer_macs",
    "macs",
    "params",
    "weight_bits",
]

#: Name and version recorded with every trial, so numbers of different conventions never mix.
COST_MODEL = "bitnas-bitops/1"


def layer_macs(layer: LayerSpec) -> int:
    """Multiply-accumulates of one sample at one step.

    linear: in * out; convolution: prod(out_size) * out_ch * in_ch / groups * prod(kernel).
    """
    if layer.kind == "linear":
        return layer.in_ch * layer.out_ch
    return (
        math.prod(layer.out_size)
        * layer.out_ch
        * (layer.in_ch // layer.groups)
        * math.prod(layer.kernel)
    )


def layer_params(layer: LayerSpec) -> int:
    """Weights of the layer (biases are kept apart: they are added, not multiplied)."""
    return layer.out_ch * (layer.in_ch // layer.groups) * math.prod(layer.kernel)


def macs(arch: Architecture) -> tuple[int, ...]:
    """Per-layer MACs of one sample at one step."""
    return tuple(layer_macs(lay) for lay in arch.layers)


def params(arch: Architecture) -> tuple[int, ...]:
    """Per-layer weight counts."""
    return tuple(layer_params(lay) for lay in arch.layers)


def in_bits(arch: Architecture) -> tuple[int, ...]:
    """Per-layer bits one input element carries over the whole forward pass (all T steps).

    A layer reading the network input gets ``input_bits`` once (direct) or T binary frames
    (rate); any other layer gets ``abits * T`` of the activation site it reads. (A read-out fed
    by global average pooling is counted at the bits of the activations it pools, as published
    BitOps count it; a bit-serial engine runs the linear read-out before the average.)
    """
    t = arch.timesteps
    first = arch.input_bits if arch.input_encoding == "direct" else t
    out = []
    for i in range(len(arch.layers)):
        src = arch.source_of(i)
        if src < 0:
            out.append(first)
        else:
            abits = arch.layers[src].abits
            assert abits is not None  # guaranteed by Architecture validation
            out.append(abits * t)
    return tuple(out)


def layer_bitops(arch: Architecture) -> tuple[int, ...]:
    """Per-layer dense BitOps: MACs_l * wbits_l * in_bits_l."""
    return tuple(
        m * lay.wbits * b for m, lay, b in zip(macs(arch), arch.layers, in_bits(arch), strict=True)
    )


def bitops(arch: Architecture) -> int:
    """Total dense BitOps of one forward pass of one sample (the budgeted cost)."""
    return sum(layer_bitops(arch))


def weight_bits(arch: Architecture) -> int:
    """Weight memory in bits: sum of params_l * wbits_l (biases excluded, see ``layer_params``)."""
    return sum(p * lay.wbits for p, lay in zip(params(arch), arch.layers, strict=True))


def event_bitops(arch: Architecture, densities: Sequence[float]) -> float:
    """Event-driven BitOps from measured bit densities of each layer's input.

    ``densities[l]`` is the fraction of 1-bits among all bits fed to layer l (over bit planes and
    steps), so the mean popcount is ``densities[l] * in_bits_l``.
    """
    if len(densities) != len(arch.layers):
        raise SpecError(
            f"`densities` must have one value per layer ({len(arch.layers)}), got {len(densities)}"
        )
    total = 0.0
    for m, lay, b, d in zip(macs(arch), arch.layers, in_bits(arch), densities, strict=True):
        if not 0.0 <= d <= 1.0:
            raise SpecError(f"a bit density must be in [0, 1], got {d!r}")
        total += m * lay.wbits * d * b
    return total


@dataclass(frozen=True)
class CostBreakdown:
    """Every cost number of one architecture, per layer and in total, with the model's name."""

    model: str
    macs: tuple[int, ...]
    params: tuple[int, ...]
    wbits: tuple[int, ...]
    in_bits: tuple[int, ...]
    layer_bitops: tuple[int, ...]
    bitops: int
    weight_bits: int

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def cost_breakdown(arch: Architecture) -> CostBreakdown:
    per_layer = layer_bitops(arch)
    return CostBreakdown(
        model=COST_MODEL,
        macs=macs(arch),
        params=params(arch),
        wbits=arch.wbits,
        in_bits=in_bits(arch),
        layer_bitops=per_layer,
        bitops=sum(per_layer),
        weight_bits=weight_bits(arch),
    )
