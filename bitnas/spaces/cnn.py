"""The plain convolutional families: ``cnn1d`` (sequences such as MNIST-1D) and ``cnn2d``.

A network is ``stages`` stages; stage s has ``depth_s`` convolutions of ``width_s`` channels
("same" padding, stride 1), each followed by batch norm (optional) and the multi-level IF
neuron; the last convolution of a stage max-pools its activations by ``pool`` while the map is
at least that large. A linear read-out follows, on the flattened map or its global average.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from bitnas.errors import SpecError
from bitnas.spaces.architecture import Architecture, LayerKind, LayerSpec
from bitnas.spaces.choosers import Chooser, RandomChooser
from bitnas.spaces.family import BitChoices, FamilySpace, choices, int_range, positive

__all__ = ["CNN1DSpace", "CNN2DSpace"]

T = TypeVar("T")

MAX_STAGES = 8
READOUTS = ("flatten", "gap")


@dataclass(frozen=True)
class _CNNSpace(FamilySpace):
    stages: tuple[int, int] = (2, 3)
    depth: tuple[int, ...] = (1, 2)
    width: tuple[int, ...] = (16, 32, 64)
    width_per_stage: bool = True
    kernel: tuple[int, ...] = (3, 5)
    pool: int = 2
    readout: str = "flatten"
    norm: bool = True

    dims: ClassVar[int]

    def __post_init__(self) -> None:
        self._validate_common()
        object.__setattr__(self, "stages", int_range("stages", self.stages, 1, MAX_STAGES))
        object.__setattr__(self, "depth", choices("depth", self.depth, positive(64)))
        object.__setattr__(self, "width", choices("width", self.width, positive(1 << 16)))
        object.__setattr__(self, "kernel", choices("kernel", self.kernel, positive(63)))
        if any(k % 2 == 0 for k in self.kernel):
            raise SpecError(
                f"every `kernel` choice must be odd ('same' padding), got {list(self.kernel)}"
            )
        positive(64)("pool", self.pool)
        if self.readout not in READOUTS:
            raise SpecError(f"`readout` must be one of {list(READOUTS)}, got {self.readout!r}")
        for name in ("width_per_stage", "norm"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"`{name}` must be true or false, got {getattr(self, name)!r}")
        if len(self.input_shape) != self.dims + 1:
            want = "(channels, length)" if self.dims == 1 else "(channels, height, width)"
            raise SpecError(
                f"the {self.family} family needs inputs shaped {want}, but the data gives "
                f"{tuple(self.input_shape)}"
            )

    def build(self, choose: Chooser) -> Architecture:
        n_stages = choose.integer("stages", *self.stages)
        timesteps = choose.categorical("timesteps", self.timesteps)
        encoding = choose.categorical("input_encoding", self.input_encoding)
        kernel = choose.categorical("kernel", self.kernel)
        shared_w = None if self.width_per_stage else choose.categorical("width", self.width)
        bits = BitChoices(self, choose)
        kind: LayerKind = "conv1d" if self.dims == 1 else "conv2d"
        ch, size = self.input_shape[0], tuple(self.input_shape[1:])
        layers: list[LayerSpec] = []
        for s in range(n_stages):
            depth = choose.categorical(f"depth_{s}", self.depth)
            width = choose.categorical(f"width_{s}", self.width) if shared_w is None else shared_w
            for b in range(depth):
                i = len(layers)
                last_of_stage = b == depth - 1
                pool = self.pool if last_of_stage and min(size) >= self.pool else 1
                lay = LayerSpec(
                    kind,
                    ch,
                    width,
                    bits.wbits(f"wbits_{i}", first=i == 0),
                    bits.abits(f"abits_{i}"),
                    kernel=(kernel,) * self.dims,
                    stride=(1,) * self.dims,
                    padding=(kernel // 2,) * self.dims,
                    in_size=size,
                    pool=pool,
                    norm=self.norm,
                )
                layers.append(lay)
                ch, size = lay.site_shape[0], lay.site_shape[1:]
        gap = self.readout == "gap"
        fan_in = ch if gap else ch * math.prod(size)
        wb_out = bits.wbits("wbits_out", last=True)
        layers.append(LayerSpec("linear", fan_in, self.num_classes, wb_out, None, gap=gap))
        return self._architecture(layers, timesteps, encoding)

    def _size_with(self, n_stages: int, depths: tuple[int, ...]) -> int:
        convs = sum(depths)
        widths = len(self.width) ** n_stages if self.width_per_stage else len(self.width)
        return widths * len(self.kernel) * self._n_bit_choices(convs + 1, convs)

    def _depth_combos(self, n_stages: int) -> list[tuple[int, ...]]:
        return list(itertools.product(self.depth, repeat=n_stages))

    def size(self) -> int:
        return sum(
            self._size_with(n, c)
            for n in range(self.stages[0], self.stages[1] + 1)
            for c in self._depth_combos(n)
        )

    def uniform_chooser(self, rng: random.Random) -> Chooser:
        # Stage counts and per-stage depths set how many parameters follow: draw that
        # structure in proportion to the architectures it holds, the rest uniformly.
        structures = [
            (n, c) for n in range(self.stages[0], self.stages[1] + 1) for c in self._depth_combos(n)
        ]
        n, depths = rng.choices(structures, weights=[self._size_with(*s) for s in structures])[0]

        class _StructureFirst(RandomChooser):
            def integer(self, name: str, low: int, high: int) -> int:
                return n if name == "stages" else super().integer(name, low, high)

            def categorical(self, name: str, choices: Sequence[T]) -> T:
                if name.startswith("depth_"):
                    return depths[int(name.split("_")[1])]  # type: ignore[return-value]
                return super().categorical(name, choices)

        return _StructureFirst(rng)

    def extremes(self, cost: Callable[[Architecture], float]) -> tuple[Architecture, Architecture]:
        """(cheapest, dearest) for costs that grow with widths, depths, kernels, bits and
        timesteps. The stage count is tried one by one: another stage pools the map once more,
        which can shrink a flattened read-out, so cost need not grow with it."""
        stages = [{"stages": n} for n in range(self.stages[0], self.stages[1] + 1)]
        return self._extremes_over(cost, stages)


@dataclass(frozen=True)
class CNN1DSpace(_CNNSpace):
    family = "cnn1d"
    dims = 1


@dataclass(frozen=True)
class CNN2DSpace(_CNNSpace):
    family = "cnn2d"
    dims = 2
