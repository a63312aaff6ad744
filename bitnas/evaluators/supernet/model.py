"""The weight-sharing supernet: full-size latent layers from which every sub-network is cut.

Every slot (see ``slots``) holds one full-precision weight as large as the largest layer any
architecture of the space puts there, its bias and batch norm, and one threshold per activation
bit width (the neuron's step is as switchable as its bits; T needs nothing: the same neuron runs
any number of steps). The batch norm is one per slot, or switchable: one per slot and the
layer's (weight bits, activation bits), and T where asked. A sub-network runs as the ordinary
``BitNet`` of its architecture with its parameters replaced by slices of the supernet's
(``torch.func.functional_call``): the quantizers, the neuron and the read-out are the trained
evaluator's own code, weights are fake-quantized on the fly to the sub-network's bits, and
gradients flow into the shared latent weights. ``extract`` copies those slices into a
stand-alone ``BitNet``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call

from bitnas.errors import EvaluationError
from bitnas.evaluators.model import BitNet, _norm, _weighted, build_model
from bitnas.evaluators.neuron import MultiLevelIF
from bitnas.evaluators.supernet.slots import slot_keys
from bitnas.spaces.architecture import Architecture, LayerSpec, NeuronSpec

__all__ = ["SuperNet"]

#: Sub-network skeletons kept (on the meta device: no memory, no random draws).
TEMPLATE_CACHE = 256


def _neuron_key(slot: str, abits: int, timesteps: int | None) -> str:
    return f"{slot}_a{abits}" if timesteps is None else f"{slot}_a{abits}_t{timesteps}"


def _norm_key(slot: str, bits: tuple[int, int | None] | None, timesteps: int | None) -> str:
    if bits is None:
        return slot
    key = f"{slot}_w{bits[0]}_a{bits[1]}"
    return key if timesteps is None else f"{key}_t{timesteps}"


class SuperNet(nn.Module):
    """Latent layers per slot (``hosts``) and thresholds per (slot, activation bits), or per
    (slot, activation bits, timesteps) where ``timesteps`` are given. Batch norms per slot, or,
    with ``norm_wbits`` (every weight bit width of the space), per (slot, weight bits,
    activation bits), and timesteps where ``norm_steps`` are given. ``input_norm``: the
    (mean, sd) every sub-network standardizes its encoded input with, as a trained network of
    the same [data] does (None: none)."""

    def __init__(
        self,
        hosts: Mapping[str, LayerSpec],
        abits: tuple[int, ...],
        neuron: NeuronSpec,
        timesteps: tuple[int, ...] | None = None,
        norm_wbits: tuple[int, ...] | None = None,
        norm_steps: tuple[int, ...] | None = None,
        input_norm: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.input_norm = input_norm  # every sub-network standardizes its input with it
        self.per_t = timesteps is not None
        steps: tuple[int | None, ...] = tuple(timesteps) if timesteps is not None else (None,)
        self.hosts = dict(hosts)
        self.layers = nn.ModuleDict({k: _weighted(h, "absmax") for k, h in hosts.items()})
        self.norm_bits = norm_wbits is not None
        self.norm_per_t = norm_steps is not None
        if norm_wbits is None:
            self.norms = nn.ModuleDict({k: _norm(h) for k, h in hosts.items()})
        else:  # switchable: every precision (and T) a layer of the slot can take
            nsteps: tuple[int | None, ...] = tuple(norm_steps) if norm_steps else (None,)
            self.norms = nn.ModuleDict(
                {
                    _norm_key(k, (w, a), t): _norm(h)
                    for k, h in hosts.items()
                    if h.norm
                    for w in norm_wbits
                    for a in (abits if h.abits is not None else (None,))
                    for t in nsteps
                }
            )
        self.neurons = nn.ModuleDict(
            {
                _neuron_key(k, b, t): MultiLevelIF(b, leak=neuron.leak, v_init=neuron.v_init)
                for k, h in hosts.items()
                if h.abits is not None
                for b in abits
                for t in steps
            }
        )
        self._templates: OrderedDict[str, BitNet] = OrderedDict()

    # -- slicing -------------------------------------------------------------------------
    def _host(self, key: str, i: int, lay: LayerSpec) -> LayerSpec:
        host = self.hosts.get(key)
        if host is None:
            raise EvaluationError(
                f"layer {i} ({lay.kind}) falls in slot {key}, which the supernet does not "
                f"have (slots: {sorted(self.hosts)}): the architecture is not of its space"
            )
        if (
            host.kind != lay.kind
            or lay.out_ch > host.out_ch
            or any(k > hk for k, hk in zip(lay.kernel, host.kernel, strict=True))
            or (lay.abits is None) != (host.abits is None)
        ):
            raise EvaluationError(
                f"layer {i} ({lay.kind} {lay.in_ch}->{lay.out_ch}, kernel {lay.kernel}) does "
                f"not fit supernet slot {key} ({host.kind} {host.in_ch}->{host.out_ch}, "
                f"kernel {host.kernel})"
            )
        return host

    def tensors(self, arch: Architecture) -> dict[str, torch.Tensor]:
        """The parameters and buffers of ``arch``'s ``BitNet``, as views of the supernet's."""
        out: dict[str, torch.Tensor] = {}
        for i, (key, lay) in enumerate(zip(slot_keys(arch), arch.layers, strict=True)):
            host = self._host(key, i, lay)
            mod = self.layers[key]
            w = mod.weight
            assert isinstance(w, torch.Tensor)
            src = arch.source_of(i)
            if lay.kind == "linear" and src >= 0 and arch.layers[src].dims and not lay.gap:
                # a flattened read-out: features are channel-major, keep the first channels
                ch, flat = arch.layers[src].out_ch, math.prod(arch.layers[src].site_shape[1:])
                host_ch = host.in_ch // flat
                if ch > host_ch:
                    raise EvaluationError(f"layer {i} reads {ch} channels, slot {key} {host_ch}")
                w = w.reshape(w.shape[0], host_ch, flat)[: lay.out_ch, :ch].reshape(
                    lay.out_ch, ch * flat
                )
            else:
                if lay.in_ch > host.in_ch:
                    raise EvaluationError(
                        f"layer {i} takes {lay.in_ch} inputs, slot {key} at most {host.in_ch}"
                    )
                w = w[: lay.out_ch, : lay.in_ch]
                for d, (k, hk) in enumerate(zip(lay.kernel, host.kernel, strict=True)):
                    w = w.narrow(2 + d, (hk - k) // 2, k)  # the centre of the largest kernel
            out[f"layers.{i}.weight"] = w
            if isinstance(mod.bias, torch.Tensor):
                out[f"layers.{i}.bias"] = mod.bias[: lay.out_ch]
            norm = self._norm_of(key, i, lay, arch.timesteps)
            if isinstance(norm, nn.modules.batchnorm._BatchNorm):
                assert norm.running_mean is not None and norm.running_var is not None
                out[f"norms.{i}.weight"] = norm.weight[: lay.out_ch]
                out[f"norms.{i}.bias"] = norm.bias[: lay.out_ch]
                out[f"norms.{i}.running_mean"] = norm.running_mean[: lay.out_ch]
                out[f"norms.{i}.running_var"] = norm.running_var[: lay.out_ch]
                assert norm.num_batches_tracked is not None
                out[f"norms.{i}.num_batches_tracked"] = norm.num_batches_tracked
            if lay.abits is not None:
                name = _neuron_key(key, lay.abits, arch.timesteps if self.per_t else None)
                if name not in self.neurons:
                    raise EvaluationError(
                        f"layer {i} has {lay.abits} activation bits at T={arch.timesteps}, "
                        "which the supernet's space does not offer"
                    )
                n = self.neurons[name]
                assert isinstance(n, MultiLevelIF)
                out[f"neurons.{i}.theta"] = n.theta
                out[f"neurons.{i}.initialized"] = n.initialized
        return out

    def _norm_of(self, key: str, i: int, lay: LayerSpec, timesteps: int) -> nn.Module:
        if not self.norm_bits:
            return self.norms[key]
        if not lay.norm:
            return nn.Identity()
        name = _norm_key(key, (lay.wbits, lay.abits), timesteps if self.norm_per_t else None)
        if name not in self.norms:
            at = f" at T={timesteps}" if self.norm_per_t else ""
            raise EvaluationError(
                f"layer {i} has {lay.wbits} weight bits and {lay.abits} activation bits{at}, "
                f"for which the supernet has no batch norm in slot {key}: the architecture is "
                "not of its space"
            )
        return self.norms[name]

    def _template(self, arch: Architecture) -> BitNet:
        k = arch.to_json()
        t = self._templates.get(k)
        if t is None:
            with torch.device("meta"):
                t = build_model(arch, "absmax", self.input_norm)
            self._templates[k] = t
            if len(self._templates) > TEMPLATE_CACHE:
                self._templates.popitem(last=False)
        else:
            self._templates.move_to_end(k)
        return t

    def forward(self, arch: Architecture, x: torch.Tensor) -> torch.Tensor:
        """Logits of sub-network ``arch`` on ``x``, through the shared weights."""
        t = self._template(arch)
        t.train(self.training)
        out: torch.Tensor = functional_call(t, self.tensors(arch), (x,), strict=True)
        return out

    @torch.no_grad()
    def extract(self, arch: Architecture) -> BitNet:
        """A stand-alone ``BitNet`` of ``arch`` holding copies of its slices of the supernet."""
        model = build_model(arch, "absmax", self.input_norm)
        state = {k: v.detach().clone() for k, v in self.tensors(arch).items()}
        model.load_state_dict(state, strict=True)
        for n in model.neurons.values():
            assert isinstance(n, MultiLevelIF)
            n._initialized = bool(n.initialized)
        device = next(self.parameters()).device
        return model.to(device)
