"""The MLP family: hidden linear layers, each followed by the multi-level IF neuron."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bitnas.errors import SpecError
from bitnas.spaces._base import SearchSpace
from bitnas.spaces.architecture import (
    ENCODINGS,
    Architecture,
    LayerSpec,
    NeuronSpec,
    check_bits,
)
from bitnas.spaces.choosers import Chooser, ExtremeChooser, RandomChooser

__all__ = ["MLPSpace"]

MAX_DEPTH = 64
MAX_TIMESTEPS = 256


def _choices(name: str, value: Any, check: Callable[[str, Any], Any]) -> tuple[Any, ...]:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"`{name}` must be a list of choices, got {value!r}", field=name)
    if not value:
        raise SpecError(f"`{name}` must list at least one choice, got []", field=name)
    for v in value:
        check(name, v)
    if len(set(value)) != len(value):
        raise SpecError(f"`{name}` must not repeat a choice, got {list(value)}", field=name)
    return tuple(value)


def _positive(limit: int) -> Callable[[str, Any], None]:
    def check(name: str, v: Any) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= limit:
            raise SpecError(
                f"every `{name}` choice must be an integer in 1..{limit}, got {v!r}", field=name
            )

    return check


def _encoding(name: str, v: Any) -> None:
    if v not in ENCODINGS:
        raise SpecError(f"`{name}` must be one of {list(ENCODINGS)}, got {v!r}", field=name)


@dataclass(frozen=True)
class MLPSpace(SearchSpace):
    """Depth, widths, per-layer weight/activation bits, timesteps and input encoding of an MLP.

    ``depth`` counts hidden layers (inclusive range). With ``*_per_layer`` false one value is
    shared by all layers; with it true each layer has its own parameter (``width_0``,
    ``wbits_0``, ...; the read-out's weight bits are ``wbits_out``), created only for layers
    that exist.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    depth: tuple[int, int] = (1, 2)
    width: tuple[int, ...] = (32, 64, 128)
    width_per_layer: bool = False
    wbits: tuple[int, ...] = (2, 4, 8)
    wbits_per_layer: bool = True
    abits: tuple[int, ...] = (1, 2, 4)
    abits_per_layer: bool = True
    timesteps: tuple[int, ...] = (1, 2, 4)
    input_encoding: tuple[str, ...] = ("direct",)
    input_bits: int = 8
    neuron: NeuronSpec = field(default_factory=NeuronSpec)

    family = "mlp"

    def __post_init__(self) -> None:
        d = self.depth
        if isinstance(d, int) and not isinstance(d, bool):
            d = (d, d)
        if (
            not isinstance(d, (list, tuple))
            or len(d) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in d)
            or not 1 <= d[0] <= d[1] <= MAX_DEPTH
        ):
            raise SpecError(
                f"`depth` must be an inclusive range [min, max] with 1 <= min <= max <= "
                f"{MAX_DEPTH}, got {self.depth!r}",
                field="depth",
            )
        object.__setattr__(self, "depth", tuple(d))
        object.__setattr__(self, "width", _choices("width", self.width, _positive(1 << 20)))
        object.__setattr__(self, "wbits", _choices("wbits", self.wbits, check_bits))
        object.__setattr__(self, "abits", _choices("abits", self.abits, check_bits))
        object.__setattr__(
            self, "timesteps", _choices("timesteps", self.timesteps, _positive(MAX_TIMESTEPS))
        )
        object.__setattr__(
            self, "input_encoding", _choices("input_encoding", self.input_encoding, _encoding)
        )
        check_bits("input_bits", self.input_bits)
        for name in ("width_per_layer", "wbits_per_layer", "abits_per_layer"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(
                    f"`{name}` must be true or false, got {getattr(self, name)!r}", field=name
                )
        if (
            not isinstance(self.num_classes, int)
            or isinstance(self.num_classes, bool)
            or self.num_classes < 2
        ):
            raise SpecError(f"`num_classes` must be >= 2, got {self.num_classes!r}")
        object.__setattr__(self, "input_shape", tuple(self.input_shape))

    # -- the one definition of the space ----------------------------------------------------
    def build(self, choose: Chooser) -> Architecture:
        depth = choose.integer("depth", *self.depth)
        timesteps = choose.categorical("timesteps", self.timesteps)
        encoding = choose.categorical("input_encoding", self.input_encoding)
        shared_w = None if self.width_per_layer else choose.categorical("width", self.width)
        shared_wb = None if self.wbits_per_layer else choose.categorical("wbits", self.wbits)
        shared_ab = None if self.abits_per_layer else choose.categorical("abits", self.abits)
        layers = []
        fan_in = math.prod(self.input_shape)
        for i in range(depth):
            w = choose.categorical(f"width_{i}", self.width) if shared_w is None else shared_w
            wb = choose.categorical(f"wbits_{i}", self.wbits) if shared_wb is None else shared_wb
            ab = choose.categorical(f"abits_{i}", self.abits) if shared_ab is None else shared_ab
            layers.append(LayerSpec("linear", fan_in, w, wb, ab))
            fan_in = w
        wb_out = choose.categorical("wbits_out", self.wbits) if shared_wb is None else shared_wb
        layers.append(LayerSpec("linear", fan_in, self.num_classes, wb_out, None))
        return Architecture(
            family=self.family,
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            layers=tuple(layers),
            timesteps=timesteps,
            input_encoding=encoding,  # type: ignore[arg-type]
            input_bits=self.input_bits,
            neuron=self.neuron,
        )

    # -- counting and extremes ------------------------------------------------------------
    def _size_at_depth(self, d: int) -> int:
        def n(choices: Sequence[Any], per_layer: bool, k: int) -> int:
            return len(choices) ** k if per_layer else len(choices)

        return (
            len(self.timesteps)
            * len(self.input_encoding)
            * n(self.width, self.width_per_layer, d)
            * n(self.wbits, self.wbits_per_layer, d + 1)
            * n(self.abits, self.abits_per_layer, d)
        )

    def size(self) -> int:
        return sum(self._size_at_depth(d) for d in range(self.depth[0], self.depth[1] + 1))

    def uniform_chooser(self, rng: random.Random) -> Chooser:
        # Depths are drawn in proportion to how many architectures they hold; the rest of the
        # choices are then independent and uniform.
        depths = list(range(self.depth[0], self.depth[1] + 1))
        d = rng.choices(depths, weights=[self._size_at_depth(x) for x in depths])[0]

        class _DepthFirst(RandomChooser):
            def integer(self, name: str, low: int, high: int) -> int:
                return d if name == "depth" else super().integer(name, low, high)

        return _DepthFirst(rng)

    def extremes(self, cost: Callable[[Architecture], float]) -> tuple[Architecture, Architecture]:
        """(cheapest, dearest) without enumeration.

        Exact for any cost that does not decrease when a width, a bit width, the timesteps or
        the depth grows, which holds for every cost of ``bitnas.spaces.cost`` on an MLP (each is
        a sum of products of those factors). Only the input encodings are tried one by one.
        """
        cheap = [
            self.build(ExtremeChooser(min, {"input_encoding": e})) for e in self.input_encoding
        ]
        dear = [self.build(ExtremeChooser(max, {"input_encoding": e})) for e in self.input_encoding]
        return min(cheap, key=cost), max(dear, key=cost)
