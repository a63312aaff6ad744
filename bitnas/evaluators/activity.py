"""Measured activity: the bit density of what each layer is fed (DESIGN.md's event cost)."""

from __future__ import annotations

import torch

__all__ = ["BitDensityMeter", "popcount"]


def popcount(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Number of 1-bits of each element of ``codes`` on ``bits`` bit planes.

    Integer codes (stored as float or int) are read as unsigned integers; a 32-bit site is a
    float32 tensor and its IEEE-754 bit pattern is counted, the honest popcount of a
    full-precision activation.
    """
    if bits == 32:
        ints = codes.to(torch.float32).contiguous().view(torch.int32)
    else:
        ints = codes.to(torch.int32)
    total = torch.zeros_like(ints)
    for k in range(bits):
        total += (ints >> k) & 1
    return total


class BitDensityMeter:
    """Accumulates, per layer, 1-bits seen and bits seen over batches, steps and bit planes."""

    def __init__(self, n_layers: int) -> None:
        self.ones = [0.0] * n_layers
        self.bits = [0.0] * n_layers
        self.spikes = [0.0] * n_layers
        self.elements = [0.0] * n_layers

    def add(self, layer: int, codes: torch.Tensor, bits: int) -> None:
        """``codes``: the integer codes fed to ``layer``, shape [steps, batch, ...]."""
        self.ones[layer] += float(popcount(codes, bits).sum(dtype=torch.float64))
        self.bits[layer] += float(codes.numel() * bits)
        self.spikes[layer] += float((codes != 0).sum())
        self.elements[layer] += float(codes.numel())

    def densities(self) -> tuple[float, ...]:
        """Fraction of 1-bits among all bits fed to each layer."""
        return tuple(o / b if b else 0.0 for o, b in zip(self.ones, self.bits, strict=True))

    def nonzero_rates(self) -> tuple[float, ...]:
        """Fraction of inputs (per element and step) that are not zero: the spike rate."""
        return tuple(s / e if e else 0.0 for s, e in zip(self.spikes, self.elements, strict=True))
