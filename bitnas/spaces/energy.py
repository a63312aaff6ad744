"""An optional energy model: compute energy of one forward pass from a published 45 nm table.

Source: M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
45 nm at 0.9 V — int8 add 0.03 pJ, int32 add 0.1 pJ, int8 multiply 0.2 pJ, int32 multiply
3.1 pJ, fp32 add 0.9 pJ, fp32 multiply 3.7 pJ. Integer widths in between are interpolated the
usual way: multiplier energy grows with the product of the operand widths (0.2 pJ * wa * wb / 64
gives 3.2 pJ at 32x32, the table's 3.1), adder energy with the accumulator width (0.03 pJ * n / 8).

Per layer and step, a MAC with a multi-bit input costs a multiply plus an accumulator add; a
1-bit input (binary spike or rate frame) needs no multiply, only a gated add (the SNN "AC"); a
full-precision operand makes it an fp32 MAC (4.6 pJ). The first layer under direct encoding is
computed once. Each neuron update per step costs its state add, compare and soft-reset subtract
(three 16-bit adds) plus a 16-bit multiply when it leaks; a residual add costs a 16-bit add per
output and step, a max pool one compare (an add at the code width) per pooled input and step.
Memory traffic is NOT included: these are compute-only lower bounds, and data movement usually
dominates real chips (Horowitz's own point).
Event-driven energy scales each layer's MAC energy by its measured nonzero-input rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bitnas.errors import SpecError
from bitnas.spaces.architecture import FULL_PRECISION, Architecture
from bitnas.spaces.cost import layer_macs

__all__ = ["ENERGY_MODEL", "EnergyBreakdown", "add_pj", "energy", "mul_pj"]

ENERGY_MODEL = "horowitz45nm-compute/2"

INT8_ADD_PJ = 0.03
INT8_MUL_PJ = 0.2
FP32_ADD_PJ = 0.9
FP32_MUL_PJ = 3.7
STATE_BITS = 16
MAX_ACC_BITS = 32


def mul_pj(a_bits: int, b_bits: int) -> float:
    """Energy of one a x b bit integer multiply (fp32 if either is full precision)."""
    if FULL_PRECISION in (a_bits, b_bits):
        return FP32_MUL_PJ
    return INT8_MUL_PJ * a_bits * b_bits / 64.0


def add_pj(bits: int) -> float:
    """Energy of one integer add of ``bits`` width (fp32 add at full precision)."""
    if bits >= FULL_PRECISION:
        return FP32_ADD_PJ
    return INT8_ADD_PJ * bits / 8.0


@dataclass(frozen=True)
class EnergyBreakdown:
    model: str
    mac_pj: tuple[float, ...]
    neuron_pj: tuple[float, ...]
    other_pj: tuple[float, ...]  # residual adds and max-pool compares
    total_pj: float


def _step_bits(arch: Architecture) -> list[tuple[int, int]]:
    """(bits per step of each layer's input, number of steps it is fed)."""
    t = arch.timesteps
    first = (arch.input_bits, 1) if arch.input_encoding == "direct" else (1, t)
    out = []
    for i in range(len(arch.layers)):
        src = arch.source_of(i)
        abits = arch.layers[src].abits if src >= 0 else None
        out.append(first if src < 0 else (abits or FULL_PRECISION, t))
    return out


def energy(arch: Architecture, nonzero_rates: Sequence[float] | None = None) -> EnergyBreakdown:
    """Compute energy (pJ) of one sample's forward pass; event-driven if rates are given.

    ``nonzero_rates[l]``: measured fraction of layer l's inputs (per element and step) that are
    not zero; a zero input skips its MACs in an event-driven implementation.
    """
    n = len(arch.layers)
    if nonzero_rates is not None and len(nonzero_rates) != n:
        raise SpecError(
            f"`nonzero_rates` must have one value per layer ({n}), got {len(nonzero_rates)}"
        )
    mac: list[float] = []
    neuron: list[float] = []
    other: list[float] = []
    for i, (lay, (bits, steps)) in enumerate(zip(arch.layers, _step_bits(arch), strict=True)):
        fan_in = (lay.in_ch // lay.groups) * math.prod(lay.kernel)
        acc = min(MAX_ACC_BITS, lay.wbits + bits + math.ceil(math.log2(max(fan_in, 2))))
        if bits == 1:  # a binary input gates an accumulate: no multiply, fp32 or integer add
            per_mac = add_pj(FULL_PRECISION if lay.wbits == FULL_PRECISION else acc)
        elif FULL_PRECISION in (bits, lay.wbits):
            per_mac = FP32_MUL_PJ + FP32_ADD_PJ
        else:
            per_mac = add_pj(acc) + mul_pj(lay.wbits, bits)
        rate = 1.0 if nonzero_rates is None else float(nonzero_rates[i])
        mac.append(layer_macs(lay) * steps * per_mac * rate)
        outputs = lay.out_ch * max(1, math.prod(lay.out_size))
        t = arch.timesteps
        # residual add into the membrane current, per output and step
        extra = outputs * t * add_pj(STATE_BITS) if lay.shortcut is not None else 0.0
        if lay.pool > 1 and lay.abits is not None:  # max pooling: a compare per pooled input
            extra += outputs * t * add_pj(lay.abits)
        other.append(extra)
        if lay.abits is None:
            neuron.append(0.0)
            continue
        leak_mul = mul_pj(STATE_BITS, STATE_BITS) if arch.neuron.leak < 1 else 0.0
        per_update = 3 * add_pj(STATE_BITS) + leak_mul
        neuron.append(outputs * t * per_update if lay.abits != FULL_PRECISION else 0.0)
    total = sum(mac) + sum(neuron) + sum(other)
    return EnergyBreakdown(ENERGY_MODEL, tuple(mac), tuple(neuron), tuple(other), total)
