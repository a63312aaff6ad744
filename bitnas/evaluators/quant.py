"""Weight quantization: symmetric, per output channel, straight-through, two step-size rules.

``absmax``: the step is max|w| / (2^(b-1) - 1) per channel, recomputed every forward pass. No
weight is ever clipped under that step, so the straight-through backward is the identity; a
small autograd function does it because torch's ``fake_quantize_per_channel_affine`` (same
result) measured 4x slower than the matmul it feeds on CPU (400 us vs 95 us for a 784x256
weight), and made fake-quantized training 2.2x slower than full precision.
``lsq``: a learned step per channel (Esser et al., "Learned Step Size Quantization", ICLR 2020),
via torch's ``_fake_quantize_learnable_per_channel_affine`` with LSQ's gradient scale
1 / sqrt(weights per channel * Qp), initialised at 2 * mean|w| / sqrt(Qp). (Torch's op decides
clipping after rounding: for |w/s| in [Qp, Qp + 1/2) it passes dW = g and dS = round - w/s
where the paper clips; the forward values are identical.)
Grids are restricted-symmetric: 2^b - 1 levels. 1-bit weights are sign(w) * mean|w| per
channel (XNOR-Net) under either rule, which the affine ops cannot express; 32 bits leaves the
weights in full precision.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bitnas.errors import SpecError
from bitnas.spaces.architecture import FULL_PRECISION

__all__ = ["METHODS", "QuantConv1d", "QuantConv2d", "QuantLinear", "fake_quant_weight"]

METHODS = ("absmax", "lsq")


def _binary(w: torch.Tensor) -> torch.Tensor:
    scale = w.reshape(w.shape[0], -1).abs().mean(dim=1).detach().clamp_min(1e-8)
    wq = torch.where(w >= 0, 1.0, -1.0) * scale.reshape((-1,) + (1,) * (w.dim() - 1))
    # wq + (w - w) is exactly wq forward (w + (wq - w) need not be), with w's gradient
    return wq.detach() + (w - w.detach())


class _AbsmaxSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: object, w: torch.Tensor, qmax: int) -> torch.Tensor:
        shape = (-1,) + (1,) * (w.dim() - 1)
        flat = w.reshape(w.shape[0], -1)
        absmax = flat.abs().amax(dim=1).clamp_min(1e-8).reshape(shape)
        # one new buffer, then in place: fresh large buffers cost page faults on CPU
        return (w * (qmax / absmax)).round_().mul_(absmax / qmax)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def fake_quant_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize-dequantize ``w`` ([out, ...]) to ``bits`` per output channel (absmax)."""
    if bits == FULL_PRECISION:
        return w
    if bits == 1:
        return _binary(w)
    out: torch.Tensor = _AbsmaxSTE.apply(w, (1 << (bits - 1)) - 1)  # type: ignore[no-untyped-call]
    return out


class _QuantWeight:
    """Mixed into torch's layers: holds ``wbits``, the rule, and the LSQ step if learned."""

    weight: torch.Tensor

    def _init_quant(self, wbits: int, method: str) -> None:
        if method not in METHODS:
            raise SpecError(f"`weight_quant` must be one of {list(METHODS)}, got {method!r}")
        self.wbits = wbits
        self.method = method
        self.step: nn.Parameter | None = None
        if method == "lsq" and wbits not in (1, FULL_PRECISION):
            qmax = (1 << (wbits - 1)) - 1
            flat = self.weight.detach().reshape(self.weight.shape[0], -1)
            init = (2 * flat.abs().mean(dim=1) / math.sqrt(qmax)).clamp_min(1e-6)
            self.step = nn.Parameter(init)
            self._grad_factor = 1.0 / math.sqrt(flat.shape[1] * qmax)

    def quantized_weight(self) -> torch.Tensor:
        if self.step is None:
            return fake_quant_weight(self.weight, self.wbits)
        qmax = (1 << (self.wbits - 1)) - 1
        zero = torch.zeros_like(self.step)
        step = self.step.abs().clamp_min(1e-8)
        return torch._fake_quantize_learnable_per_channel_affine(
            self.weight, step, zero, 0, -qmax, qmax, self._grad_factor
        )


class QuantLinear(nn.Linear, _QuantWeight):
    """``nn.Linear`` whose weight is fake-quantized to ``wbits`` in every forward pass.

    The bias stays in full precision: it is added once per output, not multiplied, and is
    not part of the BitOps (see ``bitnas.spaces.cost``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        wbits: int,
        bias: bool = True,
        method: str = "absmax",
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self._init_quant(wbits, method)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, wbits={self.wbits}, {self.method}"


class _QuantConv(_QuantWeight):
    """The forward pass shared by the quantized convolutions."""

    bias: torch.Tensor | None

    def __init__(self, *args: object, wbits: int, method: str = "absmax", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._init_quant(wbits, method)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self._conv_forward(x, self.quantized_weight(), self.bias)  # type: ignore[attr-defined]
        return out


class QuantConv1d(_QuantConv, nn.Conv1d):
    """``nn.Conv1d`` with its weight fake-quantized to ``wbits`` per output channel."""


class QuantConv2d(_QuantConv, nn.Conv2d):
    """``nn.Conv2d`` with its weight fake-quantized to ``wbits`` per output channel."""
