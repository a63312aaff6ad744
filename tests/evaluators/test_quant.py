from __future__ import annotations

import pytest
import torch

from bitnas.evaluators.quant import QuantLinear, fake_quant_weight


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_per_channel_symmetric_levels(bits):
    torch.manual_seed(0)
    w = torch.randn(6, 20) * torch.arange(1, 7)[:, None]
    q = fake_quant_weight(w, bits)
    qmax = 2 ** (bits - 1) - 1
    for row, qrow in zip(w, q, strict=True):
        scale = row.abs().max() / qmax
        codes = qrow / scale
        assert torch.allclose(codes, codes.round(), atol=1e-4)
        assert codes.abs().max() <= qmax + 1e-4
        assert len(codes.round().unique()) <= 2 * qmax + 1
        assert (qrow - row).abs().max() <= scale / 2 + 1e-6


def test_one_bit_is_sign_times_mean_abs():
    w = torch.tensor([[0.5, -1.5, 1.0], [2.0, -2.0, -2.0]])
    q = fake_quant_weight(w, 1)
    assert torch.allclose(q, torch.tensor([[1.0, -1.0, 1.0], [2.0, -2.0, -2.0]]))


def test_full_precision_untouched_and_ste_gradient():
    w = torch.randn(3, 4, requires_grad=True)
    assert fake_quant_weight(w, 32) is w
    fake_quant_weight(w, 4).sum().backward()
    assert torch.allclose(w.grad, torch.ones_like(w))


def test_quant_linear_uses_quantized_weight():
    layer = QuantLinear(5, 3, wbits=2)
    x = torch.randn(2, 5)
    expected = x @ fake_quant_weight(layer.weight, 2).T + layer.bias
    assert torch.allclose(layer(x), expected)


@pytest.mark.parametrize("bits", [2, 4])
def test_lsq_learns_its_step_and_stays_on_grid(bits):
    from bitnas.evaluators.quant import QuantConv1d

    torch.manual_seed(0)
    conv = QuantConv1d(3, 5, 3, wbits=bits, method="lsq")
    assert conv.step is not None and conv.step.shape == (5,)
    q = conv.quantized_weight()
    codes = q / conv.step.detach()[:, None, None]
    qmax = 2 ** (bits - 1) - 1
    assert torch.allclose(codes, codes.round(), atol=1e-5) and codes.abs().max() <= qmax
    conv(torch.randn(2, 3, 8)).pow(2).sum().backward()
    assert conv.step.grad is not None and conv.step.grad.abs().sum() > 0
    assert conv.weight.grad is not None


def test_lsq_falls_back_for_binary_and_full_precision():
    for bits in (1, 32):
        layer = QuantLinear(4, 3, wbits=bits, method="lsq")
        assert layer.step is None
        assert torch.equal(layer.quantized_weight(), fake_quant_weight(layer.weight, bits))


def test_unknown_rule_is_refused():
    from bitnas.errors import SpecError

    with pytest.raises(SpecError, match="`weight_quant` must be one of"):
        QuantLinear(4, 3, wbits=4, method="minmax")
