"""Measured activity: the bit density of what each layer is fed (docs/design.md's event cost)."""

from __future__ import annotations

import torch

__all__ = ["BitDensityMeter", "popcount"]


def _ints(codes: torch.Tensor, bits: int) -> torch.Tensor:
    # a 32-bit site is a float32 tensor: its IEEE-754 bit pattern is what would be moved
    if bits == 32:
        return codes.to(torch.float32).contiguous().view(torch.int32)
    return codes.to(torch.int32)


def popcount(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Number of 1-bits of each element of ``codes`` on ``bits`` bit planes.

    Integer codes (stored as float or int) are read as unsigned integers; a 32-bit site is a
    float32 tensor and its IEEE-754 bit pattern is counted, the honest popcount of a
    full-precision activation.
    """
    ints = _ints(codes, bits)
    total = torch.zeros_like(ints)
    for k in range(bits):
        total += (ints >> k) & 1
    return total


class BitDensityMeter:
    """Accumulates, per layer, the 1-bits fed to it: in total, per bit plane and per step."""

    def __init__(self, n_layers: int) -> None:
        self.plane_ones: list[list[float]] = [[] for _ in range(n_layers)]
        self.step_ones: list[list[float]] = [[] for _ in range(n_layers)]
        self.elements = [0.0] * n_layers  # per step
        self.nonzero = [0.0] * n_layers

    def add(self, layer: int, codes: torch.Tensor, bits: int) -> None:
        """``codes``: the integer codes fed to ``layer``, shape [steps, batch, ...]."""
        ints = _ints(codes, bits)
        steps = codes.shape[0]
        planes = [float(((ints >> k) & 1).sum(dtype=torch.int64)) for k in range(bits)]
        per_step = popcount(codes, bits).reshape(steps, -1).sum(dim=1, dtype=torch.int64)
        if not self.plane_ones[layer]:
            self.plane_ones[layer] = [0.0] * bits
            self.step_ones[layer] = [0.0] * steps
        for k, v in enumerate(planes):
            self.plane_ones[layer][k] += v
        for t, v in enumerate(per_step.tolist()):
            self.step_ones[layer][t] += float(v)
        self.elements[layer] += codes.numel() / steps
        self.nonzero[layer] += float((codes != 0).sum())

    def densities(self) -> tuple[float, ...]:
        """Fraction of 1-bits among all bits fed to each layer (all planes and steps)."""
        return tuple(
            sum(p) / (e * len(p) * len(s)) if e else 0.0
            for p, s, e in zip(self.plane_ones, self.step_ones, self.elements, strict=True)
        )

    def plane_densities(self) -> tuple[tuple[float, ...], ...]:
        """Per layer, the fraction of 1-bits on each bit plane (least significant first),
        over all steps; an information-efficient code sits near 0.5 on every plane."""
        return tuple(
            tuple(v / (e * len(s)) if e else 0.0 for v in p)
            for p, s, e in zip(self.plane_ones, self.step_ones, self.elements, strict=True)
        )

    def step_densities(self) -> tuple[tuple[float, ...], ...]:
        """Per layer, the fraction of 1-bits at each step, over all planes."""
        return tuple(
            tuple(v / (e * len(p)) if e else 0.0 for v in s)
            for p, s, e in zip(self.plane_ones, self.step_ones, self.elements, strict=True)
        )

    def nonzero_rates(self) -> tuple[float, ...]:
        """Fraction of inputs (per element and step) that are not zero: the spike rate."""
        return tuple(
            z / (e * len(s)) if e else 0.0
            for z, s, e in zip(self.nonzero, self.step_ones, self.elements, strict=True)
        )
