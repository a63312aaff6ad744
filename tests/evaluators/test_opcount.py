"""The hook counter on real built modules agrees exactly with the analytic cost model."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitnas.evaluators.model import build_model
from bitnas.evaluators.opcount import count_ops
from bitnas.spaces import CNN1DSpace, CNN2DSpace, MLPSpace, ResNetSpace, bitops, macs

BITS = [1, 2, 3, 4, 8, 32]

SPACES = {
    "mlp": MLPSpace(
        input_shape=(1, 8, 8), num_classes=10, depth=(1, 3), width=(5, 16, 33),
        width_per_layer=True, wbits=BITS, abits=BITS, timesteps=(1, 2, 3, 8),
        input_encoding=("direct", "rate"), norm=True,
    ),
    "cnn1d": CNN1DSpace(
        input_shape=(1, 40), num_classes=10, stages=(1, 3), depth=(1, 2), width=(4, 8),
        kernel=(3, 5), wbits=BITS, abits=BITS, timesteps=(1, 2, 4),
        input_encoding=("direct", "rate"), readout="flatten",
    ),
    "cnn2d": CNN2DSpace(
        input_shape=(1, 8, 8), num_classes=10, stages=(1, 3), depth=(1, 2), width=(4, 6),
        kernel=(1, 3), wbits=BITS, abits=BITS, timesteps=(1, 3), readout="gap",
        input_encoding=("direct", "rate"), first_wbits=8, last_wbits=8,
    ),
    "resnet": ResNetSpace(
        input_shape=(3, 16, 16), num_classes=10, stem="cifar", depth=(1, 2), width=(4, 8),
        wbits=BITS, abits=BITS, timesteps=(1, 2), input_encoding=("direct", "rate"),
    ),
    "resnet-imagenet": ResNetSpace(
        input_shape=(3, 32, 32), num_classes=7, stem="imagenet", depth=(1,), width=(4,),
        wbits=BITS, abits=BITS, timesteps=(1, 2), input_bits=4,
    ),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(SPACES))
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_counted_bitops_equal_the_cost_model(family, seed):
    arch = SPACES[family].sample_uniform(random.Random(seed))
    torch.manual_seed(seed % 1000)
    model = build_model(arch)
    # trained-like thresholds, distinct per neuron, so codes of every level occur and each
    # site's grid is its own
    for j, n in enumerate(model.neurons.values()):
        with torch.no_grad():
            n.theta.fill_(0.05 + (seed % 7) / 20 + 0.0173 * j)
    x = torch.rand(3, *arch.input_shape)
    counted = count_ops(arch, x, model)
    assert [c.checks for c in counted] == [[] for _ in counted]
    assert [c.macs_per_row for c in counted] == list(macs(arch))
    assert sum(c.bitops(3) for c in counted) == bitops(arch), arch.summary()


def test_counter_catches_a_first_layer_run_t_times():
    arch = SPACES["mlp"].build(_Fixed({"depth": 1, "timesteps": 8, "input_encoding": "direct"}))
    model = build_model(arch)
    honest = sum(c.bitops(2) for c in count_ops(arch, torch.rand(2, 1, 8, 8), model))
    assert honest == bitops(arch)
    original = model.encode

    def run_input_every_step(x):  # what a naive implementation does under direct encoding
        h, codes = original(x)
        return h.expand(8, *h.shape[1:]), codes

    model.encode = run_input_every_step  # type: ignore[method-assign]
    cheated = sum(c.bitops(2) for c in count_ops(arch, torch.rand(2, 1, 8, 8), model))
    assert cheated > bitops(arch)


def test_counter_flags_codes_wider_than_declared():
    arch = SPACES["mlp"].build(_Fixed({"depth": 1, "abits_0": 2, "timesteps": 1}))
    model = build_model(arch)
    model.neuron(0).levels = 7  # the neuron now emits 3-bit codes while declaring 2 bits
    with torch.no_grad():
        model.neuron(0).theta.fill_(0.01)
    counted = count_ops(arch, torch.rand(4, 1, 8, 8), model)
    assert any("no quantizer's grid" in m for m in counted[1].checks)


def test_counter_flags_unquantized_inputs():
    arch = SPACES["mlp"].build(_Fixed({"depth": 2, "abits_0": 2, "abits_1": 2, "timesteps": 2}))
    model = build_model(arch)
    x = torch.rand(4, 1, 8, 8)
    assert all(not c.checks for c in count_ops(arch, x, model))
    original = model.encode
    model.encode = lambda x: (x.reshape(1, 4, -1), original(x)[1])  # type: ignore[method-assign]
    assert any("no quantizer's grid" in m for m in count_ops(arch, x, model)[0].checks)
    model.encode = original  # type: ignore[method-assign]
    model.neurons["0"].forward = lambda current: current  # a neuron that passes currents on
    assert any("no quantizer's grid" in m for m in count_ops(arch, x, model)[1].checks)


def test_grouped_strided_convolutions_are_counted_exactly():
    from bitnas.spaces import Architecture, LayerSpec

    layers = (
        LayerSpec("conv1d", 4, 8, 4, 2, kernel=(3,), stride=(2,), padding=(1,), in_size=(20,)),
        LayerSpec("conv1d", 8, 8, 2, 3, kernel=(5,), stride=(1,), padding=(2,), groups=4,
                  in_size=(10,), pool=2),
        LayerSpec("conv1d", 8, 4, 8, 1, kernel=(3,), stride=(3,), padding=(0,), groups=2,
                  in_size=(5,)),
        LayerSpec("linear", 4, 5, 4, None),
    )  # fmt: skip
    arch = Architecture("cnn1d", (4, 20), 5, layers, timesteps=8, input_bits=6)
    model = build_model(arch)
    for j, n in enumerate(model.neurons.values()):
        with torch.no_grad():
            n.theta.fill_(0.07 + 0.011 * j)
    counted = count_ops(arch, torch.rand(3, 4, 20), model)
    assert [c.checks for c in counted] == [[], [], [], []]
    assert [c.macs_per_row for c in counted] == [10 * 8 * 4 * 3, 10 * 8 * 2 * 5, 1 * 4 * 4 * 3, 20]
    assert sum(c.bitops(3) for c in counted) == bitops(arch)


class _Fixed:
    """Chooser: named values, else the first option."""

    def __init__(self, values):
        self.values = values

    def integer(self, name, low, high):
        return self.values.get(name, low)

    def categorical(self, name, choices):
        return self.values.get(name, choices[0])
