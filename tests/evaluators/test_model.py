from __future__ import annotations

import torch

from bitnas.evaluators.model import build_model
from bitnas.spaces import Architecture, LayerSpec


def arch(t=4, enc="direct", abits=(2, 1), input_bits=8):
    layers = (
        LayerSpec("linear", 64, 16, 4, abits[0]),
        LayerSpec("linear", 16, 8, 4, abits[1]),
        LayerSpec("linear", 8, 10, 8, None),
    )
    return Architecture("mlp", (64,), 10, layers, t, enc, input_bits)


def _rows_seen(model, x):
    seen = []
    hooks = [
        lay.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
        for lay in model.layers
    ]
    model(x)
    for h in hooks:
        h.remove()
    return seen


def test_direct_encoding_computes_first_layer_once():
    model = build_model(arch(t=4)).eval()
    x = torch.rand(5, 64)
    # layer 0 sees the batch once; hidden layers see T*batch; read-out sees the T-average
    assert _rows_seen(model, x) == [5, 20, 5]


def test_rate_encoding_feeds_t_frames():
    model = build_model(arch(t=3, enc="rate")).eval()
    assert _rows_seen(model, torch.rand(5, 64)) == [15, 15, 5]


def test_measured_densities_are_bit_fractions():
    torch.manual_seed(0)
    model = build_model(arch(t=4)).eval()
    x = torch.rand(32, 64)
    meter = model.start_measuring()
    out = model(x)
    model.stop_measuring()
    assert out.shape == (32, 10)
    d = meter.densities()
    assert len(d) == 3 and all(0.0 <= v <= 1.0 for v in d)
    codes = torch.round(x * 255)
    expected0 = sum(((codes.int() >> k) & 1).sum().item() for k in range(8)) / (codes.numel() * 8)
    assert abs(d[0] - expected0) < 1e-12
    # hidden layers: recompute each neuron's integer codes and count their 1-bits by hand
    with torch.no_grad():
        h = (codes / 255).unsqueeze(0)
        for i, layer in enumerate(model.layers[:-1]):
            neuron = model.neuron(i)
            cur = layer(h.flatten(0, 1)).unflatten(0, h.shape[:2]).expand(4, -1, -1)
            h = neuron(cur)
            q = torch.round(h / neuron.theta.abs()).int()
            bits = neuron.abits
            ones = sum(((q >> k) & 1).sum().item() for k in range(bits))
            assert abs(d[i + 1] - ones / (q.numel() * bits)) < 1e-12


def test_input_is_quantized_to_input_bits():
    model = build_model(arch(t=1, input_bits=2)).eval()
    h, codes = model.encode(torch.tensor([[0.0, 0.2, 0.5, 0.9] * 16]))
    assert set(codes.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert torch.allclose(h * 3, codes)


def test_input_norm_standardizes_the_quantized_input_and_keeps_the_codes():
    torch.manual_seed(0)
    plain = build_model(arch(t=1, input_bits=4)).eval()
    normed = build_model(arch(t=1, input_bits=4), input_norm=(0.5, 0.25)).eval()
    normed.load_state_dict(plain.state_dict())
    x = torch.rand(8, 64)
    seen = []
    hook = normed.layers[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    meter = normed.start_measuring()
    normed(x)
    normed.stop_measuring()
    hook.remove()
    codes = torch.round(x * 15)
    # the first layer reads (q - mean) / sd of the 4-bit quantized value q: signed, 16 levels
    assert torch.allclose(seen[0], ((codes / 15 - 0.5) / 0.25).unsqueeze(0), atol=1e-6)
    assert seen[0].min() < 0 < seen[0].max() and seen[0].unique().numel() <= 16
    # the bit density is the codes' (the cost model's input_bits), not the float's
    pm = plain.start_measuring()
    plain(x)
    plain.stop_measuring()
    assert meter.densities()[0] == pm.densities()[0]
