"""Builds the torch network an Architecture describes (MLP family for now)."""

from __future__ import annotations

import math

import torch
from torch import nn

from bitnas.errors import SpecError
from bitnas.evaluators.activity import BitDensityMeter
from bitnas.evaluators.neuron import MultiLevelIF
from bitnas.evaluators.quant import QuantLinear
from bitnas.spaces.architecture import FULL_PRECISION, Architecture

__all__ = ["BitNet", "build_model"]


class BitNet(nn.Module):
    """Quantized weights + multi-level IF activation sites, run for ``arch.timesteps`` steps.

    Inputs are expected in [0, 1]. Direct encoding quantizes them to ``input_bits`` and computes
    the first layer's current once, reusing it at every step (as the cost model counts it); rate
    encoding feeds T Bernoulli spike frames. Layers run in multi-step mode (all T steps in one
    matmul). The read-out averages over T; since it is linear, it averages its input first.
    """

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        if arch.family != "mlp":
            raise SpecError(f"no model builder for family {arch.family!r}; built: ['mlp']")
        self.arch = arch
        self.layers = nn.ModuleList(
            QuantLinear(lay.in_ch, lay.out_ch, lay.wbits, bias=lay.bias) for lay in arch.layers
        )
        self.neurons = nn.ModuleList(
            MultiLevelIF(lay.abits, leak=arch.neuron.leak, v_init=arch.neuron.v_init)
            for lay in arch.layers[:-1]
            if lay.abits is not None
        )
        self.meter: BitDensityMeter | None = None

    def start_measuring(self) -> BitDensityMeter:
        """Record the bit density of every layer's input from now on; returns the meter."""
        self.meter = BitDensityMeter(len(self.layers))
        for n in self.neurons:
            assert isinstance(n, MultiLevelIF)
            n.record = True
        return self.meter

    def stop_measuring(self) -> None:
        self.meter = None
        for n in self.neurons:
            assert isinstance(n, MultiLevelIF)
            n.record = False
            n.last_codes = None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(input to layer 0 as [steps, B, F], its integer codes) for ``x`` in [0, 1]."""
        a = self.arch
        x = x.reshape(x.shape[0], -1).clamp(0.0, 1.0)
        if a.input_encoding == "rate":
            frames = torch.bernoulli(x.unsqueeze(0).expand(a.timesteps, *x.shape))
            return frames, frames
        if a.input_bits == FULL_PRECISION:
            return x.unsqueeze(0), x.unsqueeze(0)
        top = (1 << a.input_bits) - 1
        codes = torch.round(x * top)
        return (codes / top).unsqueeze(0), codes.unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.arch
        h, codes = self.encode(x)
        meter = self.meter
        if meter is not None:
            first_bits = 1 if a.input_encoding == "rate" else a.input_bits
            meter.add(0, codes, first_bits)
        steps = a.timesteps
        for i, (layer, neuron) in enumerate(zip(self.layers[:-1], self.neurons, strict=True)):
            current = layer(h.flatten(0, 1)).unflatten(0, h.shape[:2])
            if current.shape[0] != steps:  # direct encoding: one current reused at every step
                current = current.expand(steps, *current.shape[1:])
            h = neuron(current)
            if meter is not None:
                assert isinstance(neuron, MultiLevelIF) and neuron.last_codes is not None
                meter.add(i + 1, neuron.last_codes, neuron.abits)
        logits: torch.Tensor = self.layers[-1](h.mean(dim=0))
        return logits

    def n_params(self) -> int:
        return sum(math.prod(p.shape) for p in self.parameters())


def build_model(arch: Architecture) -> BitNet:
    return BitNet(arch)
