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
