"""The unified activation model: a multi-level integrate-and-fire neuron (DESIGN.md).

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

import torch
from torch import nn

from bitnas.spaces.architecture import FULL_PRECISION

__all__ = ["MultiLevelIF"]


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

    @torch.no_grad()
    def _init_theta(self, current: torch.Tensor) -> None:
        # LSQ's initial step size, 2 * E|x| / sqrt(L), from the first training batch.
        scale = 2.0 * current.abs().mean() / (self.levels**0.5)
        self.theta.copy_(scale.clamp_min(1e-3))
        self.initialized.fill_(True)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        if self.full_precision:
            out = torch.relu(current)
            if self.record:
                self.last_codes = out.detach()
            return out
        if self.training and not bool(self.initialized):
            self._init_theta(current)
        theta = self.theta.abs().clamp_min(1e-6)
        levels = float(self.levels)
        steps = current.shape[0]
        outs = []
        codes = []
        v = torch.full_like(current[0], self.v_init) * theta
        for t in range(steps):
            # v_init is the potential at the start of step 1, so the leak applies from step 2.
            v = (self.leak * v if t else v) + current[t]
            u = v / theta
            q = u.clamp(0.0, levels).floor()
            ug = u.clamp(0.0, levels + 1.0)  # the straight-through window
            s = q.detach() + (ug - ug.detach())  # exactly q forward, ug's gradient backward
            a = s * theta
            v = v - a
            outs.append(a)
            if self.record:
                codes.append(q.detach())
        if self.record:
            self.last_codes = torch.stack(codes)
        return torch.stack(outs)

    def extra_repr(self) -> str:
        return f"abits={self.abits}, leak={self.leak}, v_init={self.v_init}"
