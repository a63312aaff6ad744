"""The report's bit-plane section: measured 1-bit density per layer and bit plane, and the
event-driven saving it implies, set against the premise that about half of all bits are 1.

The premise (DESIGN.md's seed): if activations use their bits efficiently, about 50% of the
bits moved are 1, so an event-driven (bit-serial, spike-driven) implementation that only pays
for 1-bits saves at most 2x over dense execution. Each trained trial stores its per-plane
densities (``plane_densities``, least significant plane first, per layer input: layer 0 is
fed the network input); this section reads them and says whether the premise holds here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import mean
from typing import Any

__all__ = ["PlaneRow", "bitplane_section", "plane_rows"]

PREMISE = 0.5


@dataclass(frozen=True)
class PlaneRow:
    """One layer input of one trial: its per-plane densities (LSB first)."""

    trial: str
    layer: int
    planes: tuple[float, ...]

    @property
    def density(self) -> float:
        return mean(self.planes) if self.planes else 0.0


def plane_rows(label: str, user_attrs: Mapping[str, Any]) -> list[PlaneRow]:
    """The rows of one trial (none if it stored no plane densities)."""
    planes = user_attrs.get("plane_densities")
    if not planes:
        return []
    return [PlaneRow(label, i, tuple(float(v) for v in p)) for i, p in enumerate(planes) if p]


def _saving(d: float) -> str:
    return "∞" if d <= 0 else f"{1 / d:.1f}x"


def bitplane_section(
    trials: Sequence[tuple[str, Mapping[str, Any]]],
    md_table: Callable[[Sequence[str], Sequence[Sequence[str]]], list[str]],
) -> list[str]:
    """Markdown lines: the per-layer, per-plane table of ``trials`` ((label, user attrs) of
    the front points) and the verdict on the 50% premise for hidden layers (layer >= 1: fed
    by a neuron; layer 0 is fed the encoded network input)."""
    rows = [r for label, ua in trials for r in plane_rows(label, ua)]
    lines = [
        "",
        "## Bit density per layer and bit plane (front points)",
        "",
        "Fraction of 1-bits on each bit plane of each layer's input (least significant plane "
        "first; 32-bit sites count the float's IEEE-754 bits), and the event-driven saving it "
        "implies for that layer (dense bits / 1-bits = 1 / density). The premise that about "
        f"half of all bits are 1 ({PREMISE:.0%}) caps that saving at 2x.",
        "",
    ]
    if not rows:
        return [*lines, "No trial of the front stored per-plane densities.", ""]
    table = [
        [
            r.trial,
            "input" if r.layer == 0 else str(r.layer),
            " / ".join(f"{100 * p:.0f}" for p in r.planes) if len(r.planes) <= 8 else "(32 planes)",
            f"{100 * r.density:.1f}%",
            _saving(r.density),
        ]
        for r in rows
    ]
    lines += md_table(
        ["trial", "layer input", "1-bits per plane, LSB first (%)", "density", "saving"], table
    )
    hidden = [r for r in rows if r.layer >= 1 and len(r.planes) < 32]
    if hidden:
        d = [r.density for r in hidden]
        msb_low = sum(len(r.planes) > 1 and r.planes[-1] < r.planes[0] for r in hidden)
        multi = sum(len(r.planes) > 1 for r in hidden)
        holds = abs(mean(d) - PREMISE) <= 0.1
        lines += [
            "",
            f"**Against the 50% premise.** Hidden-layer inputs ({len(hidden)} layer inputs of "
            f"{len({r.trial for r in hidden})} front points) carry {100 * mean(d):.1f}% 1-bits "
            f"on average (range {100 * min(d):.1f}-{100 * max(d):.1f}%), so event-driven "
            f"execution would save {_saving(mean(d))} on them (range "
            f"{_saving(max(d))}-{_saving(min(d))}), not at most 2x: the premise "
            + ("holds here (within 10 points of 50%)." if holds else "does not hold here.")
            + (
                f" In {msb_low} of {multi} multi-bit inputs the most significant plane is "
                "sparser than the least significant one."
                if multi
                else ""
            ),
        ]
    inputs = [r for r in rows if r.layer == 0 and len(r.planes) < 32]
    if inputs:
        lines += [
            "",
            f"The encoded network input carries {100 * mean(r.density for r in inputs):.1f}% "
            "1-bits on average.",
        ]
    return [*lines, ""]
