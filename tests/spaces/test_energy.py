from __future__ import annotations

import pytest

from bitnas.spaces import Architecture, LayerSpec, NeuronSpec
from bitnas.spaces.energy import add_pj, energy, mul_pj


def test_table_anchors_of_horowitz_2014():
    assert mul_pj(8, 8) == pytest.approx(0.2)  # int8 multiply
    assert mul_pj(32, 32) == pytest.approx(3.7)  # fp32 multiply (32 = full precision)
    assert add_pj(8) == pytest.approx(0.03)
    assert add_pj(32) == pytest.approx(0.9)  # fp32 add
    assert mul_pj(4, 2) == pytest.approx(0.2 * 8 / 64)


def arch(t=1, abits=2, leak=1.0, enc="direct"):
    layers = (LayerSpec("linear", 16, 8, 4, abits), LayerSpec("linear", 8, 3, 4, None))
    return Architecture("mlp", (16,), 3, layers, t, enc, 8, NeuronSpec(leak=leak))


def test_hand_computed_energy():
    e = energy(arch(t=2, abits=1))
    # layer 0: 128 MACs once (direct), int 4x8 multiply + add of 4+8+4 = 16 bits
    l0 = 128 * (mul_pj(4, 8) + add_pj(16))
    # layer 1: 1-bit spikes for 2 steps: no multiply, an add of 4+1+3 = 8 bits
    l1 = 24 * 2 * add_pj(8)
    assert e.mac_pj == pytest.approx((l0, l1))
    # 8 IF neurons x 2 steps x three 16-bit adds; no leak multiply
    assert e.neuron_pj == pytest.approx((8 * 2 * 3 * add_pj(16), 0.0))
    assert e.total_pj == pytest.approx(l0 + l1 + 8 * 2 * 3 * add_pj(16))


def test_leak_costs_a_multiply_and_events_scale_mac_energy():
    assert energy(arch(leak=0.9)).neuron_pj[0] > energy(arch(leak=1.0)).neuron_pj[0]
    dense = energy(arch())
    sparse = energy(arch(), nonzero_rates=[0.5, 0.25])
    assert sparse.mac_pj == pytest.approx((dense.mac_pj[0] * 0.5, dense.mac_pj[1] * 0.25))


def test_binary_input_to_full_precision_weights_is_an_fp32_accumulate():
    layers = (LayerSpec("linear", 16, 8, 32, 1), LayerSpec("linear", 8, 3, 32, None))
    a = Architecture("mlp", (16,), 3, layers, 4, "rate", 8)
    e = energy(a)
    assert e.mac_pj == pytest.approx((128 * 4 * add_pj(32), 24 * 4 * add_pj(32)))


def test_residual_adds_and_pooling_cost_energy():
    from bitnas.spaces import CNN1DSpace, ResNetSpace

    kw = dict(num_classes=4, wbits=(4,), abits=(2,), timesteps=(2,))
    res = next(ResNetSpace(input_shape=(3, 8, 8), depth=(1,), width=(4,), **kw).grid())
    e = energy(res)
    adds = [i for i, lay in enumerate(res.layers) if lay.shortcut is not None]
    assert adds and all(e.other_pj[i] > 0 for i in adds)
    cnn = next(
        CNN1DSpace(input_shape=(1, 8), stages=1, depth=(1,), width=(2,), kernel=(3,), **kw).grid()
    )
    assert cnn.layers[0].pool == 2
    assert energy(cnn).other_pj[0] == pytest.approx(2 * 8 * 2 * add_pj(2))
