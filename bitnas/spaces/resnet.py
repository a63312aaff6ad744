"""The residual family: ResNet basic blocks with CIFAR-style or ImageNet-style stems.

``stem = "cifar"``: a 3x3 convolution (stride 1), stages of widths w, 2w, 4w (He et al. 2016,
section 4.2). ``stem = "imagenet"``: a 7x7 convolution with stride 2 and a stride-2 max pool,
stages of widths w, 2w, 4w, 8w (ResNet-18/34). Every stage after the first starts with stride
2; a block whose shape changes takes a 1x1 projection shortcut (option B), else the identity.
Global average pooling feeds the linear read-out. The stem's 3x3/2 max pool is modelled as a
2x2/2 pool: the output size is the same and pooling is not a BitOp.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from bitnas.errors import SpecError
from bitnas.spaces.architecture import Architecture, LayerSpec
from bitnas.spaces.choosers import Chooser, ExtremeChooser, RandomChooser
from bitnas.spaces.family import BitChoices, FamilySpace, choices, positive

__all__ = ["STEMS", "ResNetSpace"]

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

        def add(lay_kw: dict[str, object]) -> int:
            i = len(layers)
            layers.append(LayerSpec(**lay_kw))  # type: ignore[arg-type]
            return i

        ch, size = self.input_shape[0], tuple(self.input_shape[1:])
        imagenet = self.stem == "imagenet"
        k, s = (7, 2) if imagenet else (3, 1)
        stem = LayerSpec(
            "conv2d", ch, base, bits.wbits("wbits_0", first=True), bits.abits("abits_0"),
            kernel=(k, k), stride=(s, s), padding=(k // 2, k // 2), in_size=size,
            pool=2 if imagenet else 1, norm=self.norm, bias=False,
        )  # fmt: skip
        layers.append(stem)
        site, (ch, *rest) = 0, stem.site_shape
        size = tuple(rest)
        for st in range(self.stages):
            width = base * 2**st
            for b in range(choose.categorical(f"depth_{st}", self.depth)):
                stride = 2 if st > 0 and b == 0 else 1
                conv = {"kind": "conv2d", "kernel": (3, 3), "padding": (1, 1), "norm": self.norm,
                        "bias": False}  # fmt: skip
                i1 = len(layers)
                c1 = add({**conv, "in_ch": ch, "out_ch": width, "stride": (stride, stride),
                          "in_size": size, "source": site,
                          "wbits": bits.wbits(f"wbits_{i1}"), "abits": bits.abits(f"abits_{i1}")})  # fmt: skip
                out_size = layers[c1].out_size
                shortcut = site
                if stride != 1 or ch != width:
                    ip = len(layers)
                    shortcut = add({"kind": "conv2d", "kernel": (1, 1), "padding": (0, 0),
                                    "norm": self.norm, "bias": False, "in_ch": ch, "out_ch": width,
                                    "stride": (stride, stride), "in_size": size, "source": site,
                                    "wbits": bits.wbits(f"wbits_{ip}"), "abits": None})  # fmt: skip
                i2 = len(layers)
                site = add({**conv, "in_ch": width, "out_ch": width, "stride": (1, 1),
                            "in_size": out_size, "source": c1, "shortcut": shortcut,
                            "wbits": bits.wbits(f"wbits_{i2}"), "abits": bits.abits(f"abits_{i2}")})  # fmt: skip
                ch, size = width, out_size
        layers.append(
            LayerSpec(
                "linear",
                ch,
                self.num_classes,
                bits.wbits("wbits_out", last=True),
                None,
                source=site,
                gap=True,
            )  # fmt: skip
        )
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

    def _projections(self, depths: tuple[int, ...]) -> int:
        base_min = min(self.width)  # projections exist where shape changes; same for all widths
        n, ch = 0, base_min
        for st, _ in enumerate(depths):
            width = base_min * 2**st
            n += int(st > 0 or ch != width)
            ch = width
        return n

    def _depth_combos(self) -> list[tuple[int, ...]]:
        combos: list[tuple[int, ...]] = [()]
        for _ in range(self.stages):
            combos = [c + (d,) for c in combos for d in self.depth]
        return combos

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
            def categorical(self, name: str, options: object) -> object:  # type: ignore[override]
                if name.startswith("depth_"):
                    return depths[int(name.split("_")[1])]
                return super().categorical(name, options)  # type: ignore[arg-type]

        return _DepthsFirst(rng)

    def extremes(self, cost: Callable[[Architecture], float]) -> tuple[Architecture, Architecture]:
        """(cheapest, dearest): cost grows with blocks, width, bits and timesteps."""
        encs = self.input_encoding
        cheap = [self.build(ExtremeChooser(min, {"input_encoding": e})) for e in encs]
        dear = [self.build(ExtremeChooser(max, {"input_encoding": e})) for e in encs]
        return min(cheap, key=cost), max(dear, key=cost)
