"""Which supernet layer ("slot") each layer of an architecture inherits its weights from.

Elastic depth keeps the first layers of every stage, so a layer is named by its stage and its
position in the stage, read from the layer graph alone: a new stage starts after a layer that
pools, or at a strided layer that follows an unstrided one (a ResNet stage's first block; its
projection shortcut, strided too, stays in that stage). An MLP is one stage. The read-out is
named by the spatial size it flattens (a different number of stages pools the map to a
different size, and a flattened read-out's weights are laid out per position), so sub-networks
with the same read-out input layout share it. Elastic width keeps the first channels, elastic
kernels the centre of the largest kernel.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from bitnas.errors import EvaluationError, SpecError
from bitnas.spaces._base import SearchSpace
from bitnas.spaces.architecture import Architecture, LayerSpec
from bitnas.spaces.choosers import ExtremeChooser

__all__ = ["host_layers", "largest", "slot_keys", "smallest", "space_hosts"]


def slot_keys(arch: Architecture) -> list[str]:
    """The slot of every layer of ``arch`` (the read-out's is ``out_<flattened size>``)."""
    keys: list[str] = []
    stage, pos = 0, 0
    layers = arch.layers
    for i, lay in enumerate(layers):
        if lay.groups != 1:
            raise EvaluationError(
                f"layer {i} is a grouped convolution (groups={lay.groups}); the supernet "
                "shares only ungrouped layers"
            )
        if i == len(layers) - 1:
            src = arch.source_of(i)
            flat = 1
            if src >= 0 and layers[src].dims and not lay.gap:
                flat = math.prod(layers[src].site_shape[1:])
            keys.append(f"out_{flat}")
            break
        if i > 0:
            prev = layers[i - 1]
            strided = max(lay.stride, default=1) > 1 and max(prev.stride, default=1) == 1
            if prev.pool > 1 or strided:
                stage, pos = stage + 1, 0
        keys.append(f"s{stage}_p{pos}")
        pos += 1
    return keys


def _structures(space: SearchSpace) -> list[dict[str, int]]:
    """Choices that change the read-out's layout: every stage count a CNN space allows."""
    stages = getattr(space, "stages", None)
    if isinstance(stages, tuple):
        return [{"stages": n} for n in range(stages[0], stages[1] + 1)]
    return [{}]


def largest(space: SearchSpace, fixed: dict[str, int] | None = None) -> Architecture:
    """The sub-network with the largest option of every numeric choice (widest, deepest,
    most bits and timesteps): the top of the sandwich."""
    return space.build(ExtremeChooser(max, fixed))


def smallest(space: SearchSpace) -> Architecture:
    """The sub-network with the smallest option of every numeric choice."""
    return space.build(ExtremeChooser(min))


def _widen(a: LayerSpec, b: LayerSpec, key: str) -> LayerSpec:
    if (a.kind, a.abits is None, a.bias, a.norm) != (b.kind, b.abits is None, b.bias, b.norm):
        raise SpecError(f"supernet slot {key} holds layers of different kinds: {a} and {b}")
    return dataclasses.replace(
        a,
        in_ch=max(a.in_ch, b.in_ch),
        out_ch=max(a.out_ch, b.out_ch),
        kernel=tuple(max(x, y) for x, y in zip(a.kernel, b.kernel, strict=True)),
        padding=tuple(max(x, y) // 2 for x, y in zip(a.kernel, b.kernel, strict=True)),
        in_size=tuple(max(x, y) for x, y in zip(a.in_size, b.in_size, strict=True)),
        pool=1,
    )


def host_layers(archs: Iterable[Architecture]) -> dict[str, LayerSpec]:
    """Per slot, a layer as large as the largest layer any of ``archs`` puts there."""
    hosts: dict[str, LayerSpec] = {}
    for arch in archs:
        for key, lay in zip(slot_keys(arch), arch.layers, strict=True):
            hosts[key] = _widen(hosts[key], lay, key) if key in hosts else lay
    return hosts


def space_hosts(space: SearchSpace) -> dict[str, LayerSpec]:
    """The supernet's layers: the largest architecture of every read-out layout."""
    return host_layers(largest(space, f) for f in _structures(space))
