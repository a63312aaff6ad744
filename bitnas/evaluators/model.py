"""Builds the torch network any Architecture describes (MLPs, CNNs, residual nets).

One generic builder reads the layer graph (``source``/``shortcut``/``pool``/``gap``), so every
family trains through the same code the cost model and the op counter describe.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bitnas.evaluators.activity import BitDensityMeter
from bitnas.evaluators.neuron import MultiLevelIF
from bitnas.evaluators.quant import QuantConv1d, QuantConv2d, QuantLinear
from bitnas.spaces.architecture import FULL_PRECISION, Architecture, LayerSpec

__all__ = ["BitNet", "build_model"]


def _weighted(lay: LayerSpec, method: str) -> nn.Module:
    if lay.kind == "linear":
        return QuantLinear(
            lay.in_ch, lay.out_ch, lay.wbits, bias=lay.bias and not lay.norm, method=method
        )
    cls = QuantConv1d if lay.kind == "conv1d" else QuantConv2d
    return cls(
        lay.in_ch,
        lay.out_ch,
        lay.kernel,
        stride=lay.stride,
        padding=lay.padding,
        groups=lay.groups,
        bias=lay.bias and not lay.norm,
        wbits=lay.wbits,
        method=method,
    )


def _norm(lay: LayerSpec) -> nn.Module:
    if not lay.norm:
        return nn.Identity()
    return {"linear": nn.BatchNorm1d, "conv1d": nn.BatchNorm1d, "conv2d": nn.BatchNorm2d}[lay.kind](
        lay.out_ch
    )


def _merge(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(0, 1)


class BitNet(nn.Module):
    """Quantized weights + multi-level IF activation sites, run for ``arch.timesteps`` steps.

    Inputs are expected in [0, 1]. Direct encoding quantizes them to ``input_bits`` and computes
    the current of every layer that reads the input once, reusing it at every step (as the cost
    model counts it); rate encoding feeds T Bernoulli spike frames. Layers run in multi-step mode
    (all T steps in one call). The read-out averages over T — it is linear, so it averages its
    input first (and global-average-pools it where ``gap`` is set).

    ``input_norm`` = (mean, sd) standardizes the *encoded* input: the first layers read
    (q - mean) / sd for the quantized value q. The quantization itself is unchanged, so
    ``input_bits`` means what the cost model counts: the first layer reads ``input_bits``-bit
    codes (a uniform grid over the data range with a zero point, i.e. signed standardized
    values). The affine map folds exactly into the first layer's per-output scale and bias (for
    a convolution up to its zero-padded border taps), so it adds no BitOps. The bit-density
    meter sees the codes, as before.
    """

    def __init__(
        self,
        arch: Architecture,
        weight_quant: str = "absmax",
        input_norm: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.arch = arch
        if input_norm is not None and not input_norm[1] > 0:
            raise ValueError(f"input_norm's sd must be > 0, got {input_norm}")
        self.input_norm = input_norm
        self.layers = nn.ModuleList(_weighted(lay, weight_quant) for lay in arch.layers)
        self.norms = nn.ModuleList(_norm(lay) for lay in arch.layers)
        self.neurons = nn.ModuleDict(
            {
                str(i): MultiLevelIF(lay.abits, leak=arch.neuron.leak, v_init=arch.neuron.v_init)
                for i, lay in enumerate(arch.layers)
                if lay.abits is not None
            }
        )
        self.meter: BitDensityMeter | None = None

    def neuron(self, i: int) -> MultiLevelIF:
        n = self.neurons[str(i)]
        assert isinstance(n, MultiLevelIF)
        return n

    def start_measuring(self) -> BitDensityMeter:
        """Record the bit density of every layer's input from now on; returns the meter."""
        self.meter = BitDensityMeter(len(self.layers))
        for n in self.neurons.values():
            assert isinstance(n, MultiLevelIF)
            n.record = True
        return self.meter

    def stop_measuring(self) -> None:
        self.meter = None
        for n in self.neurons.values():
            assert isinstance(n, MultiLevelIF)
            n.record = False
            n.last_codes = None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(network input as [steps, B, ...], its integer codes) for ``x`` in [0, 1]."""
        a = self.arch
        x = x.reshape(x.shape[0], *a.input_shape).clamp(0.0, 1.0)
        if a.input_encoding == "rate":
            frames = torch.bernoulli(x.unsqueeze(0).expand(a.timesteps, *x.shape))
            return frames, frames
        if a.input_bits == FULL_PRECISION:
            return x.unsqueeze(0), x.unsqueeze(0)
        top = (1 << a.input_bits) - 1
        codes = (x * top).round_()
        return (codes * (1.0 / top)).unsqueeze(0), codes.unsqueeze(0)

    def _input_bits(self) -> int:
        a = self.arch
        return 1 if a.input_encoding == "rate" else a.input_bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.arch
        steps = a.timesteps
        h, codes = self.encode(x)
        if self.input_norm is not None:
            mean, sd = self.input_norm
            h = (h - mean) * (1.0 / sd)
        acts: dict[int, torch.Tensor] = {-1: h}
        site_codes: dict[int, tuple[torch.Tensor, int]] = {-1: (codes, self._input_bits())}
        currents: dict[int, torch.Tensor] = {}
        meter = self.meter
        n = len(a.layers)
        out: torch.Tensor | None = None
        for i, lay in enumerate(a.layers):
            src = a.source_of(i)
            if meter is not None:
                c, bits = site_codes[src]
                meter.add(i, c, bits)
            feed = acts[src]
            layer = self.layers[i]
            if i == n - 1:  # read-out: average over steps (and positions) first; it is linear
                z = feed.mean(dim=0)
                z = z.flatten(2).mean(dim=2) if lay.gap and z.dim() > 2 else z.flatten(1)
                out = layer(z)
                break
            if lay.kind == "linear":
                feed = (
                    feed.flatten(2) if not lay.gap or feed.dim() <= 3 else feed.flatten(3).mean(3)
                )
            current = layer(_merge(feed))
            current = self.norms[i](current).unflatten(0, feed.shape[:2])
            if lay.abits is None:  # projection shortcut: its current joins a later layer's
                currents[i] = current
                continue
            if lay.shortcut is not None:
                j = lay.shortcut
                extra = currents[j] if a.layers[j].abits is None else acts[j]
                current = current + extra
            if current.shape[0] != steps:  # computed once from the direct input: reused
                current = current.expand(steps, *current.shape[1:])
            neuron = self.neuron(i)
            act = neuron(current)
            if lay.pool > 1:
                act = _pool(act, lay.pool)
            acts[i] = act
            if meter is not None:
                assert neuron.last_codes is not None
                c = neuron.last_codes
                site_codes[i] = (_pool(c, lay.pool) if lay.pool > 1 else c, neuron.abits)
        assert out is not None
        return out

    def n_params(self) -> int:
        return sum(math.prod(p.shape) for p in self.parameters())


def _pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """Max-pool [T, B, C, *size] over its spatial dims with kernel = stride = k."""
    merged = _merge(x)
    fn = F.max_pool1d if merged.dim() == 3 else F.max_pool2d
    pooled: torch.Tensor = fn(merged, k)
    return pooled.reshape(*x.shape[:2], *pooled.shape[1:])


def build_model(
    arch: Architecture,
    weight_quant: str = "absmax",
    input_norm: tuple[float, float] | None = None,
) -> BitNet:
    """The network of ``arch``; ``weight_quant`` is the weight step-size rule (absmax, lsq),
    ``input_norm`` the (mean, sd) that standardizes the encoded input (None: none)."""
    return BitNet(arch, weight_quant, input_norm)
