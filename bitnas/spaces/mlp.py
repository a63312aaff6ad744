"""The MLP family: hidden linear layers, each followed by the multi-level IF neuron."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from bitnas.errors import SpecError
from bitnas.spaces.architecture import Architecture, LayerSpec
from bitnas.spaces.choosers import Chooser, RandomChooser
from bitnas.spaces.family import BitChoices, FamilySpace, choices, int_range, positive

__all__ = ["MLPSpace"]

MAX_DEPTH = 64


@dataclass(frozen=True)
class MLPSpace(FamilySpace):
    """Depth, widths, per-layer weight/activation bits, timesteps and input encoding of an MLP.

    ``depth`` counts hidden layers (inclusive range). With ``*_per_layer`` false one value is
    shared by all layers; with it true each layer has its own parameter (``width_0``,
    ``wbits_0``, ...; the read-out's weight bits are ``wbits_out``), created only for layers
    that exist. ``norm`` adds batch norm after every hidden layer.
    """

    depth: tuple[int, int] = (1, 2)
    width: tuple[int, ...] = (32, 64, 128)
    width_per_layer: bool = False
    norm: bool = False

    family = "mlp"

    def __post_init__(self) -> None:
        self._validate_common()
        object.__setattr__(self, "depth", int_range("depth", self.depth, 1, MAX_DEPTH))
        object.__setattr__(self, "width", choices("width", self.width, positive(1 << 20)))
        for name in ("width_per_layer", "norm"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(
                    f"`{name}` must be true or false, got {getattr(self, name)!r}", field=name
                )

    # -- the one definition of the space ----------------------------------------------------
    def build(self, choose: Chooser) -> Architecture:
        depth = choose.integer("depth", *self.depth)
        timesteps = choose.categorical("timesteps", self.timesteps)
        encoding = choose.categorical("input_encoding", self.input_encoding)
        shared_w = None if self.width_per_layer else choose.categorical("width", self.width)
        bits = BitChoices(self, choose)
        layers = []
        fan_in = math.prod(self.input_shape)
        for i in range(depth):
            w = choose.categorical(f"width_{i}", self.width) if shared_w is None else shared_w
            wb = bits.wbits(f"wbits_{i}", first=i == 0)
            ab = bits.abits(f"abits_{i}")
            layers.append(LayerSpec("linear", fan_in, w, wb, ab, norm=self.norm))
            fan_in = w
        wb_out = bits.wbits("wbits_out", last=True)
        layers.append(LayerSpec("linear", fan_in, self.num_classes, wb_out, None))
        return self._architecture(layers, timesteps, encoding)

    # -- counting and extremes ------------------------------------------------------------
    def _size_at_depth(self, d: int) -> int:
        widths = len(self.width) ** d if self.width_per_layer else len(self.width)
        return widths * self._n_bit_choices(d + 1, d)

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
