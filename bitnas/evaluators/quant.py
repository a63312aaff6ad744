"""Weight quantization: symmetric, per output channel, absmax scale, straight-through.

Built on torch's own ``fake_quantize_per_channel_affine`` (its backward is the STE masked to the
quantization range). 1-bit weights are sign(w) * mean|w| per channel (XNOR-Net), which the
affine op cannot express. 32 bits leaves the weights in full precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bitnas.spaces.architecture import FULL_PRECISION

__all__ = ["QuantConv1d", "QuantConv2d", "QuantLinear", "fake_quant_weight"]


def fake_quant_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize-dequantize ``w`` ([out, ...]) to ``bits`` per output channel, STE gradient."""
    if bits == FULL_PRECISION:
        return w
    flat = w.reshape(w.shape[0], -1)
    if bits == 1:
        scale = flat.abs().mean(dim=1).detach().clamp_min(1e-8)
        shape = (-1,) + (1,) * (w.dim() - 1)
        wq = torch.where(w >= 0, 1.0, -1.0) * scale.reshape(shape)
        # wq + (w - w) is exactly wq forward (w + (wq - w) need not be), with w's gradient
        return wq.detach() + (w - w.detach())
    qmax = (1 << (bits - 1)) - 1
    scale = (flat.abs().amax(dim=1).detach() / qmax).clamp_min(1e-8).float()
    zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -qmax, qmax)


class QuantLinear(nn.Linear):
    """``nn.Linear`` whose weight is fake-quantized to ``wbits`` in every forward pass.

    The bias stays in full precision: it is added once per output, not multiplied, and is
    not part of the BitOps (see ``bitnas.spaces.cost``).
    """

    def __init__(self, in_features: int, out_features: int, wbits: int, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.wbits = wbits

    def quantized_weight(self) -> torch.Tensor:
        return fake_quant_weight(self.weight, self.wbits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, wbits={self.wbits}"


class QuantConv1d(nn.Conv1d):
    """``nn.Conv1d`` with its weight fake-quantized to ``wbits`` per output channel."""

    def __init__(self, *args: object, wbits: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.wbits = wbits

    def quantized_weight(self) -> torch.Tensor:
        return fake_quant_weight(self.weight, self.wbits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self._conv_forward(x, self.quantized_weight(), self.bias)
        return out


class QuantConv2d(nn.Conv2d):
    """``nn.Conv2d`` with its weight fake-quantized to ``wbits`` per output channel."""

    def __init__(self, *args: object, wbits: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.wbits = wbits

    def quantized_weight(self) -> torch.Tensor:
        return fake_quant_weight(self.weight, self.wbits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self._conv_forward(x, self.quantized_weight(), self.bias)
        return out
