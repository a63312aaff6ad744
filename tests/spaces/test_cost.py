"""BitOps of hand-computed architectures equal docs/design.md's formula exactly."""

from __future__ import annotations

import pytest

from bitnas.errors import SpecError
from bitnas.spaces import (
    Architecture,
    LayerSpec,
    bitops,
    cost_breakdown,
    event_bitops,
    in_bits,
    macs,
)
from bitnas.spaces.cost import layer_macs, weight_bits


def mlp(widths, wbits, abits, t=1, enc="direct", input_bits=8, n_in=64, n_out=10):
    layers, fan_in = [], n_in
    for w, wb, ab in zip(widths, wbits[:-1], abits, strict=True):
        layers.append(LayerSpec("linear", fan_in, w, wb, ab))
        fan_in = w
    layers.append(LayerSpec("linear", fan_in, n_out, wbits[-1], None))
    return Architecture("mlp", (n_in,), n_out, tuple(layers), t, enc, input_bits)


def test_one_hidden_layer_direct_t1():
    a = mlp([32], [4, 8], [2])
    # layer 0: 64*32 MACs * 4 wbits * 8 input bits; layer 1: 32*10 * 8 wbits * 2 abits * 1 step
    assert macs(a) == (2048, 320)
    assert in_bits(a) == (8, 2)
    assert bitops(a) == 64 * 32 * 4 * 8 + 32 * 10 * 8 * 2 == 70656


def test_three_hidden_layers_mixed_bits_t4_direct():
    a = mlp([128, 64, 32], [8, 2, 4, 8], [1, 4, 2], t=4)
    expected = (
        64 * 128 * 8 * 8  # first layer sees the 8-bit input once (direct encoding)
        + 128 * 64 * 2 * (1 * 4)  # 1-bit spikes over 4 steps
        + 64 * 32 * 4 * (4 * 4)  # 4-bit multi-level spikes over 4 steps
        + 32 * 10 * 8 * (2 * 4)
    )
    assert bitops(a) == expected == 524288 + 65536 + 131072 + 20480


def test_rate_encoding_first_layer_gets_t_bits():
    a = mlp([16], [2, 2], [1], t=4, enc="rate")
    assert in_bits(a) == (4, 4)
    assert bitops(a) == 64 * 16 * 2 * 4 + 16 * 10 * 2 * 4 == 9472
    direct = mlp([16], [2, 2], [1], t=4, enc="direct", input_bits=6)
    assert bitops(direct) == 64 * 16 * 2 * 6 + 16 * 10 * 2 * 4


def test_full_precision_counts_32_bits():
    a = mlp([16], [32, 32], [32], input_bits=32)
    assert bitops(a) == 64 * 16 * 32 * 32 + 16 * 10 * 32 * 32


def test_weight_bits_and_breakdown():
    a = mlp([32, 16], [4, 2, 8], [2, 1], t=2)
    assert weight_bits(a) == 64 * 32 * 4 + 32 * 16 * 2 + 16 * 10 * 8
    b = cost_breakdown(a)
    assert b.bitops == bitops(a) == sum(b.layer_bitops)
    assert b.in_bits == (8, 4, 2)
    assert b.to_dict()["macs"] == [2048, 512, 160]


def test_event_bitops_uses_density_times_in_bits():
    a = mlp([32], [4, 8], [2], t=2)
    # popcount = density * in_bits: 0.25 * 8 for the input, 0.5 * (2 * 2) for the hidden layer
    assert event_bitops(a, [0.25, 0.5]) == 2048 * 4 * 2.0 + 320 * 8 * 2.0
    assert event_bitops(a, [1.0, 1.0]) == bitops(a)
    with pytest.raises(SpecError, match="one value per layer"):
        event_bitops(a, [0.5])
    with pytest.raises(SpecError, match=r"in \[0, 1\]"):
        event_bitops(a, [0.5, 1.5])


def test_conv_macs_formula():
    conv = LayerSpec(
        "conv2d", 3, 16, 4, 2, kernel=(3, 3), stride=(2, 2), padding=(1, 1), in_size=(32, 32)
    )
    assert conv.out_size == (16, 16)
    assert layer_macs(conv) == 16 * 16 * 16 * 3 * 3 * 3
    grouped = LayerSpec(
        "conv1d", 8, 8, 4, 2, kernel=(5,), stride=(1,), padding=(0,), groups=4, in_size=(40,)
    )
    assert layer_macs(grouped) == 36 * 8 * 2 * 5
