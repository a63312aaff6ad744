"""An op counter independent of the analytic cost model: it runs the real built network and
counts, with forward hooks, what each weighted layer actually computes and is fed.

For every call of a weighted layer it reads the real input tensor: rows per sample (how many
times per forward pass the layer runs — once under direct encoding, T times for spikes) and
MACs per row (from the layer's real output shape and weight). The bits per row come from the
*values* the layer receives: they must lie on the grid of one quantizer of the network — the
input encoder's (multiples of 1/(2^b - 1) in [0, 1], or 0/1 rate frames) or a neuron's
(multiples of its threshold, at most 2^abits - 1 of them) — and that quantizer's bits are
counted. A read-out fed the average of T steps of codes (and of the positions, under global
average pooling) is checked to be such an average and counted as the T bit-serial passes it
stands for. The weights' integer levels are counted too. If the model computed anything the
cost model does not describe — a layer run T times instead of once, an input that is not
quantized, codes wider than their declared bits, a layer fed from another site than declared —
the counter flags it or its totals disagree with ``bitnas.spaces.cost``. (Only the number of
positions a global average pool averages is read from the architecture.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from bitnas.errors import EvaluationError
from bitnas.evaluators.model import BitNet, build_model
from bitnas.evaluators.neuron import MultiLevelIF
from bitnas.spaces.architecture import FULL_PRECISION, Architecture

__all__ = ["CountedLayer", "count_ops"]


@dataclass
class CountedLayer:
    macs_per_row: int = 0
    rows: int = 0
    in_bits_per_row: int = 0
    wbits: int = 0
    weight_levels: int = 0
    checks: list[str] = field(default_factory=list)

    def bitops(self, batch: int) -> int:
        return self.macs_per_row * (self.rows // batch) * self.wbits * self.in_bits_per_row


def _macs_per_row(module: nn.Module, out: torch.Tensor, rows: int) -> int:
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    if isinstance(module, nn.Linear):
        return int(weight.shape[0] * weight.shape[1])
    # convolution: every output element costs (in_ch / groups) * prod(kernel) MACs
    per_output = math.prod(weight.shape[1:])
    return int(out.numel() // rows * per_output)


def _weight_levels(module: nn.Module) -> int:
    w = module.quantized_weight().detach()  # type: ignore[operator]
    flat = w.reshape(w.shape[0], -1)
    return max(int(torch.unique(row).numel()) for row in flat)


@dataclass(frozen=True)
class _Grid:
    name: str
    site: int  # -1: the network input
    scale: float
    top: int  # largest code
    bits: int  # bits per step


def _on_grid(x: torch.Tensor, scale: float, top: float) -> bool:
    c = x.detach().double() / scale
    tol = 1e-3 + 2e-7 * top  # float32 products of codes and thresholds
    return bool(((c - c.round()).abs() <= tol).all() and c.min() >= -tol and c.max() <= top + tol)


def count_ops(
    arch: Architecture, x: torch.Tensor, model: BitNet | None = None
) -> list[CountedLayer]:
    """Run ``arch`` (freshly built unless ``model`` is given) on ``x`` ([B, ...] in [0, 1]) and
    count per layer; ``sum(c.bitops(B) for c in ...)`` is the counted dense BitOps. Problems
    found are listed in each layer's ``checks``."""
    model = model or build_model(arch)
    model.eval()
    batch = x.shape[0]
    n = len(arch.layers)
    counted = [CountedLayer() for _ in range(n)]
    steps_of: dict[int, int] = {}

    grids: list[_Grid] = []
    if arch.input_encoding == "rate":
        grids.append(_Grid("the rate-coded input", -1, 1.0, 1, 1))
    elif arch.input_bits != FULL_PRECISION:
        top = (1 << arch.input_bits) - 1
        grids.append(_Grid("the encoded input", -1, 1.0 / top, top, arch.input_bits))
    for key, neuron in model.neurons.items():
        assert isinstance(neuron, MultiLevelIF)
        if neuron.abits != FULL_PRECISION:
            theta = float(neuron.theta.detach().abs().clamp_min(1e-6))
            grids.append(
                # the top code is what its declared bits allow, whatever the module emits
                _Grid(
                    f"layer {key}'s neuron", int(key), theta, (1 << neuron.abits) - 1, neuron.abits
                )
            )

    def neuron_hook(i: int):  # type: ignore[no-untyped-def]
        def hook(mod: nn.Module, inp: object, out: torch.Tensor) -> None:
            steps_of[i] = out.shape[0]

        return hook

    def declared_bits(src: int) -> int:
        if src < 0:
            return 1 if arch.input_encoding == "rate" else arch.input_bits
        abits = arch.layers[src].abits
        assert abits is not None
        return abits

    def layer_hook(i: int):  # type: ignore[no-untyped-def]
        def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            c = counted[i]
            x_in = inp[0]
            rows = x_in.shape[0]
            c.rows += rows
            c.macs_per_row = _macs_per_row(mod, out, rows)
            c.wbits = int(mod.wbits)  # type: ignore[arg-type]
            c.weight_levels = _weight_levels(mod)
            src = arch.source_of(i)
            readout = i == n - 1
            # an averaged read-out input is a sum of codes over steps (and positions)
            positions = 1
            if readout and arch.layers[i].gap and src >= 0:
                positions = math.prod(arch.layers[src].site_shape[1:])
            steps = steps_of.get(src, 1) if readout and src >= 0 else 1
            if declared_bits(src) == FULL_PRECISION:  # a float input has no grid to check
                c.in_bits_per_row = FULL_PRECISION * steps
                return
            matches = []
            for g in grids:
                k = steps_of.get(g.site, 1) * positions if readout and g.site >= 0 else 1
                if _on_grid(x_in * k, g.scale, g.top * k):
                    matches.append(g)
            if not matches:
                c.checks.append(f"the input of layer {i} lies on no quantizer's grid")
                c.in_bits_per_row = declared_bits(src) * steps
                return
            g = next((m for m in matches if m.site == src), matches[0])
            if g.site != src:
                c.checks.append(f"layer {i} is fed {g.name}'s codes, not site {src} as declared")
            c.in_bits_per_row = g.bits * (steps_of.get(g.site, 1) if readout and g.site >= 0 else 1)

        return hook

    handles = []
    for i, layer in enumerate(model.layers):
        handles.append(layer.register_forward_hook(layer_hook(i)))
    for key, neuron in model.neurons.items():
        handles.append(neuron.register_forward_hook(neuron_hook(int(key))))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    for i, c in enumerate(counted):
        # symmetric restricted grids: 2^b - 1 levels; 1 bit: two (+-scale)
        limit = {1: 2, FULL_PRECISION: None}.get(c.wbits, 2**c.wbits - 1)
        if limit is not None and c.weight_levels > limit:
            c.checks.append(f"layer {i} weights take {c.weight_levels} levels, over {c.wbits} bits")
        if c.rows % batch:
            raise EvaluationError(f"layer {i} ran {c.rows} rows for a batch of {batch}")
    return counted
