"""The unified activation model: a multi-level integrate-and-fire neuron (docs/design.md).

    v <- leak * v + I_t
    s_t = clamp(floor(v / theta), 0, 2**abits - 1)
    v <- v - s_t * theta                       (soft reset)

T = 1 is a uniform clipped quantizer (a quantized ANN), abits = 1 with T > 1 a binary spiking
IF/LIF neuron, both > 1 multi-level spikes. abits = 32 is the full-precision site: s_t = relu(I_t).

It runs in multi-step mode: the whole [T, batch, ...] current at once, the loop over T is only
element-wise work. Gradients use the clipped straight-through estimator of LSQ/QCFS: d(theta*s)/dv
= 1 while v/theta is in [0, L + 1) — the window in which the (v_init = 0.5: rounding) quantizer
tracks its input — and 0 outside; d(theta*s)/dtheta = s - v/theta inside, L above, so the
threshold is learned. (Clipping the window at L instead starves binary spikes of gradient exactly
when they fire: on MNIST-1D a T=4 binary cnn1d reached 80.5% test accuracy that way, 92.2% with
this window; a 2-bit T=1 one 92.9% and 94.7%.) No library offers this neuron with soft reset,
multi-level output and a learned threshold together (snntorch/spikingjelly neurons are binary),
hence written here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bitnas.spaces.architecture import FULL_PRECISION

__all__ = ["MultiLevelIF"]


class _MultiStepIF(torch.autograd.Function):
    """The T-step neuron as one autograd node: the forward loop runs without building a graph
    and saves only u_t = v_t / theta; the backward runs the loop in reverse (BPTT through the
    membrane and the soft reset). Twelve autograd nodes per step would otherwise dominate the
    cost of small layers (measured: 2.2x full-precision step time at T=1 before, see
    docs/BENCHMARKS.md)."""

    @staticmethod
    def forward(
        ctx: Any,
        current: torch.Tensor,
        theta: torch.Tensor,
        levels: float,
        leak: float,
        v_init: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        steps = current.shape[0]
        us = torch.empty_like(current)
        codes = torch.empty_like(current)
        v = current[0] + v_init * theta
        inv = 1.0 / theta
        for t in range(steps):
            if t:
                v = v.mul_(leak).add_(current[t])
            u = torch.mul(v, inv, out=us[t])
            q = torch.clamp(u, 0.0, levels, out=codes[t]).floor_()
            if t + 1 < steps:  # the last step's reset is never read
                v = v.sub_(q * theta)
        ctx.save_for_backward(us, theta)
        ctx.levels, ctx.leak, ctx.v_init = levels, leak, v_init
        ctx.mark_non_differentiable(codes)
        return codes * theta, codes

    @staticmethod
    def backward(
        ctx: Any, grad_out: torch.Tensor, _grad_codes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, None, None, None]:
        us, theta = ctx.saved_tensors
        levels, leak = ctx.levels, ctx.leak
        grad_in = torch.empty_like(grad_out)
        g_theta = torch.zeros((), dtype=grad_out.dtype, device=grad_out.device)
        g_next: torch.Tensor | None = None
        # ``hardtanh_backward(g, u, 0, L + 1)`` is g inside the straight-through window and 0
        # outside, in one float kernel: boolean masks and torch.where run 5-20x slower on CPU.
        window = torch.ops.aten.hardtanh_backward
        top = levels + 1.0
        for t in range(us.shape[0] - 1, -1, -1):
            u = us[t]
            ga = grad_out[t]
            # v_t feeds a_t (slope 1 inside the window) and the carried potential v_t - a_t
            # (slope 1 - 1 inside): g_v = ga inside, the carry's gradient outside.
            if g_next is None:  # the last step: nothing is carried further
                diff = ga
                g_v = window(ga, u, 0.0, top)
            else:
                g_reset = g_next * leak
                diff = ga - g_reset
                g_v = window(diff, u, 0.0, top).add_(g_reset)
            grad_in[t] = g_v
            # d a_t / d theta = q - u inside (LSQ), q outside; the carry sees the opposite sign
            d_theta = u.clamp(0.0, levels).floor_().sub_(window(u, u, 0.0, top))
            g_theta += torch.vdot(diff.reshape(-1), d_theta.reshape(-1))
            g_next = g_v
        assert g_next is not None
        g_theta = g_theta + ctx.v_init * g_next.sum()  # v starts at v_init * theta
        return grad_in, g_theta.reshape(theta.shape), None, None, None


class MultiLevelIF(nn.Module):
    """Activation site with ``abits`` bits per step over ``timesteps`` steps.

    ``forward(current)`` takes the input current ``[T, B, ...]`` and returns the integer spike
    counts ``s`` (as float) times theta, shape ``[T, B, ...]``; ``last_codes`` keeps the integer
    codes of the latest call when ``record`` is set (for bit-density measurement).
    """

    def __init__(self, abits: int, *, leak: float = 1.0, v_init: float = 0.5) -> None:
        super().__init__()
        self.abits = abits
        self.leak = leak
        self.v_init = v_init
        self.full_precision = abits == FULL_PRECISION
        self.levels = 0 if self.full_precision else (1 << abits) - 1
        self.theta = nn.Parameter(torch.ones(()))
        self.initialized: torch.Tensor
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.record = False
        self.last_codes: torch.Tensor | None = None
        # mirrors the buffer so a training step need not read it back from a GPU
        self._initialized = False

    @torch.no_grad()
    def _init_theta(self, current: torch.Tensor) -> None:
        # LSQ's initial step size, 2 * E|x| / sqrt(L), from the first training batch.
        scale = 2.0 * current.abs().mean() / (self.levels**0.5)
        self.theta.copy_(scale.clamp_min(1e-3))
        self.initialized.fill_(True)
        self._initialized = True

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        if self.full_precision:
            out = torch.relu(current)
            if self.record:
                self.last_codes = out.detach()
            return out
        if self.training and not self._initialized and not bool(self.initialized):
            self._init_theta(current)
        theta = self.theta.abs().clamp_min(1e-6)
        out, codes = _MultiStepIF.apply(  # type: ignore[no-untyped-call]
            current,
            theta.to(current.dtype),
            float(self.levels),
            float(self.leak),
            float(self.v_init),
        )
        if self.record:
            self.last_codes = codes
        return out  # type: ignore[no-any-return]

    def extra_repr(self) -> str:
        return f"abits={self.abits}, leak={self.leak}, v_init={self.v_init}"
