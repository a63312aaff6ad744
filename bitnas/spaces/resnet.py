"""The residual family: ResNet basic blocks with CIFAR-style or ImageNet-style stems.

``stem = "cifar"``: a 3x3 convolution (stride 1), stages of widths w, 2w, 4w (He et al. 2016,
section 4.2). ``stem = "imagenet"``: a 7x7 convolution with stride 2 and a stride-2 max pool,
stages of widths w, 2w, 4w, 8w (ResNet-18/34). Every stage after the first starts with stride
2; a block whose shape changes takes a 1x1 projection shortcut (option B), else the identity.
Global average pooling feeds the linear read-out. The stem's 3x3/2 (padding 1) max pool is
modelled as a 2x2/2 pool: pooling is not a BitOp, and the output size is the same whenever the
stem's output size is even (112 at 224x224 inputs); for odd sizes it is one smaller.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bitnas.errors import SpecError
from bitnas.spaces.architecture import Architecture, LayerSpec
from bitnas.spaces.choosers import Chooser, RandomChooser
from bitnas.spaces.family import BitChoices, FamilySpace, choices, positive

__all__ = ["STEMS", "ResNetSpace"]

T = TypeVar("T")

#: stem -> default number of stages
STEMS = {"cifar": 3, "imagenet": 4}


@dataclass(frozen=True)
class ResNetSpace(FamilySpace):
    """Blocks per stage (``depth_s``), base width, per-layer bits, timesteps of a ResNet."""

    stem: str = "cifar"
    stages: int = 0
    depth: tuple[int, ...] = (1, 2, 3)
    width: tuple[int, ...] = (16,)
    norm: bool = True

    family = "resnet"

    def __post_init__(self) -> None:
        self._validate_common()
        if self.stem not in STEMS:
            raise SpecError(f"`stem` must be one of {list(STEMS)}, got {self.stem!r}", field="stem")
        if self.stages == 0:
            object.__setattr__(self, "stages", STEMS[self.stem])
        positive(8)("stages", self.stages)
        object.__setattr__(self, "depth", choices("depth", self.depth, positive(64)))
        object.__setattr__(self, "width", choices("width", self.width, positive(1 << 14)))
        if len(self.input_shape) != 3:
            raise SpecError(
                "the resnet family needs image inputs shaped (channels, height, width), but the "
                f"data gives {tuple(self.input_shape)}"
            )

    def build(self, choose: Chooser) -> Architecture:
        timesteps = choose.categorical("timesteps", self.timesteps)
        encoding = choose.categorical("input_encoding", self.input_encoding)
        base = choose.categorical("width", self.width)
        bits = BitChoices(self, choose)
        layers: list[LayerSpec] = []

        def conv(ch: int, width: int, k: int, stride: int, size: tuple[int, ...], **kw: Any) -> int:
            """Append a k x k convolution (with a neuron unless ``abits`` is given) -> index."""
            i = len(layers)
            if "abits" not in kw:  # a projection passes abits=None: it has no neuron to choose for
                kw["abits"] = bits.abits(f"abits_{i}")
            layers.append(
                LayerSpec(
                    "conv2d",
                    ch,
                    width,
                    bits.wbits(f"wbits_{i}", first=i == 0),
                    kernel=(k, k),
                    stride=(stride, stride),
                    padding=(k // 2, k // 2),
                    in_size=size,
                    norm=self.norm,
                    bias=False,
                    **kw,
                )
            )
            return i

        imagenet = self.stem == "imagenet"
        k, s = (7, 2) if imagenet else (3, 1)
        site = conv(
            self.input_shape[0], base, k, s, self.input_shape[1:], pool=2 if imagenet else 1
        )
        ch, *rest = layers[site].site_shape
        size = tuple(rest)
        for st in range(self.stages):
            width = base * 2**st
            for b in range(choose.categorical(f"depth_{st}", self.depth)):
                stride = 2 if st > 0 and b == 0 else 1
                c1 = conv(ch, width, 3, stride, size, source=site)
                out = layers[c1].out_size
                shortcut = site
                if stride != 1 or ch != width:  # projection shortcut (option B): no neuron
                    shortcut = conv(ch, width, 1, stride, size, source=site, abits=None)
                site = conv(width, width, 3, 1, out, source=c1, shortcut=shortcut)
                ch, size = width, out
        wb_out = bits.wbits("wbits_out", last=True)
        layers.append(
            LayerSpec("linear", ch, self.num_classes, wb_out, None, source=site, gap=True)
        )
        return self._architecture(layers, timesteps, encoding)

    def _projections(self, depths: tuple[int, ...]) -> int:
        base_min = min(self.width)  # projections exist where shape changes; same for all widths
        n, ch = 0, base_min
        for st, _ in enumerate(depths):
            width = base_min * 2**st
            n += int(st > 0 or ch != width)
            ch = width
        return n

    def _depth_combos(self) -> list[tuple[int, ...]]:
        return list(itertools.product(self.depth, repeat=self.stages))

    def _size_with(self, depths: tuple[int, ...]) -> int:
        convs = 1 + 2 * sum(depths)
        weighted = convs + self._projections(depths) + 1
        return len(self.width) * self._n_bit_choices(weighted, convs)

    def size(self) -> int:
        return sum(self._size_with(c) for c in self._depth_combos())

    def uniform_chooser(self, rng: random.Random) -> Chooser:
        combos = self._depth_combos()
        depths = rng.choices(combos, weights=[self._size_with(c) for c in combos])[0]

        class _DepthsFirst(RandomChooser):
            def categorical(self, name: str, choices: Sequence[T]) -> T:
                if name.startswith("depth_"):
                    return depths[int(name.split("_")[1])]  # type: ignore[return-value]
                return super().categorical(name, choices)

        return _DepthsFirst(rng)
