"""The residual family against published sizes, and its space mechanics."""

from __future__ import annotations

import pytest

from bitnas.errors import SpecError
from bitnas.spaces import ResNetSpace, bitops, macs, params


def fixed(stem, depth, width, classes, shape, **kw):
    kw = {"wbits": (32,), "abits": (32,), "timesteps": (1,), "input_bits": 32, **kw}
    s = ResNetSpace(
        input_shape=shape, num_classes=classes, stem=stem, depth=(depth,), width=(width,), **kw
    )
    assert s.size() == 1
    return next(s.grid())


def test_resnet18_imagenet_matches_published_macs_and_weights():
    a = fixed("imagenet", 2, 64, 1000, (3, 224, 224))
    # torchvision's resnet18: 1.814 GMACs; 11,689,512 parameters of which 9,600 are batch-norm
    # and 1,000 the fc bias, leaving 11,678,912 weights
    assert sum(macs(a)) == 1_814_073_344
    assert sum(params(a)) == 11_678_912
    assert len(a.layers) == 21 and a.layers[-1].gap


def test_resnet20_cifar_with_projection_shortcuts():
    a = fixed("cifar", 3, 16, 10, (3, 32, 32))
    # He et al.'s ResNet-20 (option A, zero-padded shortcuts): 40.55M MACs, exactly
    # 442,368 (stem) + 14,155,776 + 2 x 12,976,128 (stages) + 640 (fc) = 40,551,040.
    # Option B adds two 1x1 projections: 16x16x32x16 + 8x8x64x32 = 2 x 131,072 MACs.
    assert sum(macs(a)) == 40_551_040 + 262_144
    assert len(a.layers) == 1 + 2 * 9 + 2 + 1


def test_w4a4_with_8bit_first_and_last_layers():
    a = fixed("imagenet", 2, 64, 1000, (3, 224, 224), wbits=(4,), abits=(4,), input_bits=8,
              first_wbits=8, last_wbits=8)  # fmt: skip
    m = macs(a)
    assert a.layers[0].wbits == 8 and a.layers[-1].wbits == 8
    assert all(lay.wbits == 4 for lay in a.layers[1:-1])
    expected = m[0] * 8 * 8 + sum(x * 4 * 4 for x in m[1:-1]) + m[-1] * 8 * 4
    assert bitops(a) == expected


def test_space_size_matches_grid_and_shortcuts_are_right():
    s = ResNetSpace(input_shape=(3, 16, 16), num_classes=4, depth=(1, 2), width=(4, 8),
                    wbits=(2, 4), abits=(1, 2), timesteps=(1,), wbits_per_layer=False,
                    abits_per_layer=False)  # fmt: skip
    archs = list(s.grid())
    assert len(archs) == s.size() == 2 * 2**3 * 2 * 2
    for a in archs:
        for i, lay in enumerate(a.layers):
            if lay.shortcut is not None:
                sc = a.layers[lay.shortcut]
                assert sc.abits is None or sc.site_shape == lay.site_shape
                assert lay.shortcut < i


def test_bad_resnet_values():
    with pytest.raises(SpecError, match="`stem` must be one of"):
        ResNetSpace(input_shape=(3, 32, 32), num_classes=10, stem="tiny")
    with pytest.raises(SpecError, match="needs image inputs shaped"):
        ResNetSpace(input_shape=(40,), num_classes=10)


def test_projection_shortcuts_create_no_activation_parameter():
    s = ResNetSpace(input_shape=(3, 8, 8), num_classes=4, depth=(1,), width=(4,), wbits=(4,),
                    abits=(1, 2), timesteps=(1,))  # fmt: skip
    pairs = list(s.grid_with_params())
    assert len(pairs) == s.size() == len({a.key() for _, a in pairs})
    for chosen, a in pairs:
        for i, lay in enumerate(a.layers[:-1]):
            assert (f"abits_{i}" in chosen) == (lay.abits is not None)
