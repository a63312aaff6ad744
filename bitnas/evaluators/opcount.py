"""An op counter independent of the analytic cost model: it runs the real built network and
counts, with forward hooks, what each weighted layer actually computes and is fed.

For every call of a weighted layer it reads the real input tensor: rows per sample (how many
times per forward pass the layer runs — once under direct encoding, T times for spikes) and
MACs per row (from the layer's real output shape and weight). The bits per row come from the
quantizer that produced the input, and are checked against the values seen: a neuron's integer
codes must fit its ``abits``, the encoded input must fit ``input_bits``. A read-out fed the
average of T steps of codes (and of the positions, under global average pooling) is counted as
the T bit-serial passes that average stands for, and its input is checked to be such an average.
The weights' integer levels are counted too. If the model computed anything the cost model does
not describe — a layer run T times instead of once, an input wider than its declared bits — the
totals disagree with ``bitnas.spaces.cost``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from bitnas.errors import EvaluationError
from bitnas.evaluators.model import BitNet, build_model
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


def _fits(codes: torch.Tensor, bits: int) -> bool:
    if bits == FULL_PRECISION:
        return True
    c = codes.detach()
    return bool(((c == c.round()) & (c >= 0) & (c <= (1 << bits) - 1)).all())


def count_ops(
    arch: Architecture, x: torch.Tensor, model: BitNet | None = None
) -> list[CountedLayer]:
    """Run ``arch`` (freshly built unless ``model`` is given) on ``x`` ([B, ...] in [0, 1]) and
    count per layer; ``sum(c.bitops(B) for c in ...)`` is the counted dense BitOps."""
    model = model or build_model(arch)
    model.eval()
    batch = x.shape[0]
    n = len(arch.layers)
    counted = [CountedLayer() for _ in range(n)]
    codes: dict[int, torch.Tensor] = {}

    def neuron_hook(i: int):  # type: ignore[no-untyped-def]
        def hook(mod: nn.Module, inp: object, out: torch.Tensor) -> None:
            codes[i] = mod.last_codes  # type: ignore[assignment]

        return hook

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
            if src < 0:
                rate = arch.input_encoding == "rate"
                c.in_bits_per_row = 1 if rate else arch.input_bits
                enc_codes = model.encode(x)[1]
                if not _fits(enc_codes, c.in_bits_per_row):
                    c.checks.append(f"network input wider than {c.in_bits_per_row} bits")
                return
            neuron = model.neuron(src)
            q = codes[src]
            c.in_bits_per_row = neuron.abits
            if not _fits(q, neuron.abits):
                c.checks.append(f"codes of layer {src} wider than {neuron.abits} bits")
            if i == n - 1:  # read-out on the average of T steps (and positions): T passes
                steps = q.shape[0]
                c.in_bits_per_row = neuron.abits * steps
                theta = (
                    float(neuron.theta.detach().abs()) if neuron.abits != FULL_PRECISION else 1.0
                )
                positions = math.prod(q.shape[3:]) if arch.layers[i].gap else 1
                summed = x_in.detach() * steps * positions / theta
                if neuron.abits != FULL_PRECISION and not torch.allclose(
                    summed, summed.round(), atol=1e-3
                ):
                    c.checks.append("read-out input is not an average of neuron codes")

        return hook

    handles = []
    for i, layer in enumerate(model.layers):
        handles.append(layer.register_forward_hook(layer_hook(i)))
    for key, neuron in model.neurons.items():
        neuron.record = True  # type: ignore[assignment]
        handles.append(neuron.register_forward_hook(neuron_hook(int(key))))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for neuron in model.neurons.values():
            neuron.record = False  # type: ignore[assignment]
    for i, c in enumerate(counted):
        # symmetric restricted grids: 2^b - 1 levels; 1 bit: two (+-scale)
        limit = {1: 2, FULL_PRECISION: None}.get(c.wbits, 2**c.wbits - 1)
        if limit is not None and c.weight_levels > limit:
            c.checks.append(f"layer {i} weights take {c.weight_levels} levels, over {c.wbits} bits")
        if c.rows % batch:
            raise EvaluationError(f"layer {i} ran {c.rows} rows for a batch of {batch}")
    return counted
