"""The multi-level IF neuron against a hand-written reference of docs/design.md's equations."""

from __future__ import annotations

import math

import pytest
import torch

from bitnas.evaluators.neuron import MultiLevelIF


def reference(current, theta, abits, leak, v_init):
    """docs/design.md's equations, one scalar at a time."""
    levels = 2**abits - 1
    v = v_init * theta
    out = []
    for t, i_t in enumerate(current):
        v = (leak * v if t else v) + i_t
        s = min(max(math.floor(v / theta), 0), levels)
        v -= s * theta
        out.append(s)
    return out


@pytest.mark.parametrize(
    ("abits", "steps", "leak"), [(1, 4, 1.0), (2, 1, 1.0), (3, 5, 0.8), (1, 8, 0.5)]
)
def test_matches_reference_equations(abits, steps, leak):
    torch.manual_seed(0)
    n = MultiLevelIF(abits, leak=leak, v_init=0.5)
    n.initialized.fill_(True)
    with torch.no_grad():
        n.theta.fill_(0.7)
    n.record = True
    cur = torch.randn(steps, 50) * 2
    out = n(cur)
    codes = n.last_codes
    assert codes is not None
    for j in range(50):
        ref = reference(cur[:, j].tolist(), 0.7, abits, leak, 0.5)
        assert codes[:, j].tolist() == ref
    assert torch.allclose(out, codes * 0.7)


def test_t1_is_a_rounding_clipped_quantizer():
    n = MultiLevelIF(2, v_init=0.5)
    n.initialized.fill_(True)
    x = torch.linspace(-1, 5, 301)[None]
    out = n(x)[0]
    expected = torch.clamp(torch.floor(x[0] + 0.5), 0, 3)
    assert torch.equal(out, expected)


def test_binary_spikes_average_to_rate():
    # A constant current of 0.3*theta over T=10 steps fires 3 spikes (IF with soft reset).
    n = MultiLevelIF(1, v_init=0.0)
    n.initialized.fill_(True)
    out = n(torch.full((10, 1), 0.3))
    assert set(out.flatten().tolist()) <= {0.0, 1.0}
    assert out.sum().item() == 3


def test_full_precision_site_is_relu():
    n = MultiLevelIF(32)
    x = torch.randn(3, 7)
    assert torch.equal(n(x), torch.relu(x))


def test_gradients_reach_input_and_threshold():
    n = MultiLevelIF(2)
    x = (torch.rand(4, 16) * 2).requires_grad_()
    n.train()
    n(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert n.theta.grad is not None and n.theta.grad.abs() > 0
    assert bool(n.initialized)  # LSQ init happened on the first training batch


def autograd_reference(current, theta, levels, leak, v_init):
    """The neuron written with plain autograd ops: what the fused function must reproduce."""
    v = torch.full_like(current[0], v_init) * theta
    outs = []
    for t in range(current.shape[0]):
        v = (leak * v if t else v) + current[t]
        u = v / theta
        q = u.clamp(0.0, levels).floor()
        ug = u.clamp(0.0, levels + 1.0)
        a = (q.detach() + (ug - ug.detach())) * theta
        v = v - a
        outs.append(a)
    return torch.stack(outs)


@pytest.mark.parametrize(
    ("abits", "steps", "leak"), [(1, 1, 1.0), (1, 6, 0.9), (3, 4, 1.0), (2, 8, 0.7)]
)
def test_fused_backward_equals_autograd_reference(abits, steps, leak):
    torch.manual_seed(1)
    cur = (torch.randn(steps, 5, 7, dtype=torch.float64) * 1.5).requires_grad_()
    theta = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(steps, 5, 7, dtype=torch.float64)
    n = MultiLevelIF(abits, leak=leak, v_init=0.5).double()
    n.initialized.fill_(True)
    with torch.no_grad():
        n.theta.copy_(theta)
    out = n(cur)
    (out * upstream).sum().backward()
    cur2 = cur.detach().clone().requires_grad_()
    theta2 = theta.detach().clone().requires_grad_()
    ref = autograd_reference(cur2, theta2, 2**abits - 1, leak, 0.5)
    (ref * upstream).sum().backward()
    assert torch.allclose(out, ref)
    assert torch.allclose(cur.grad, cur2.grad)
    assert torch.allclose(n.theta.grad, theta2.grad)
