"""The resolved, frozen architecture a trial trains: what the cost model and builders read."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

from bitnas.errors import SpecError

__all__ = [
    "FULL_PRECISION",
    "Architecture",
    "LayerSpec",
    "NeuronSpec",
    "check_bits",
]

#: Bit width that stands for "not quantized" (float32), as in docs/design.md's cost model.
FULL_PRECISION = 32
#: Largest integer bit width a quantizer accepts; above it only FULL_PRECISION is legal.
MAX_INT_BITS = 16

LayerKind = Literal["linear", "conv1d", "conv2d"]
Encoding = Literal["direct", "rate"]
ENCODINGS: tuple[str, ...] = ("direct", "rate")
LAYER_KINDS: tuple[str, ...] = ("linear", "conv1d", "conv2d")


def check_bits(name: str, value: object) -> int:
    """Return ``value`` if it is a legal bit width (1..16 or 32), else raise SpecError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (1 <= value <= MAX_INT_BITS or value == FULL_PRECISION)
    ):
        raise SpecError(
            f"`{name}` must be an integer bit width in 1..{MAX_INT_BITS} or "
            f"{FULL_PRECISION} (full precision), got {value!r}",
            field=name,
        )
    return value


def _tuple_of_ints(name: str, value: object) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise SpecError(f"`{name}` must be a list of integers, got {value!r}", field=name)
    return tuple(value)


@dataclass(frozen=True)
class LayerSpec:
    """One weighted layer: its shape, its weight bits and the activation site after it.

    ``in_ch``/``out_ch`` are features for a linear layer and channels for a convolution;
    ``in_size`` is the spatial size of the input (empty for linear). ``abits`` is the bits per
    timestep of the neuron after the layer; ``None`` means no neuron: the read-out (the last
    layer, averaged over the timesteps) or a projection shortcut whose output current is added
    into a later layer.

    The graph: ``source`` is the activation site the layer reads (None: the previous layer's,
    -1: the network input, j: layer j's). ``shortcut`` is a layer whose output is added to this
    layer's current before its neuron — that layer's activations if it has a neuron (identity
    shortcut), else its current (projection). ``pool`` max-pools this layer's activations
    (kernel = stride = pool; integer codes stay integer). ``gap``: a linear layer fed by a
    convolution global-average-pools it first (else it flattens it). ``norm``: batch norm after
    the layer, folded into the per-channel weight scale and bias at inference (not a BitOp).
    """

    kind: LayerKind
    in_ch: int
    out_ch: int
    wbits: int
    abits: int | None
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    groups: int = 1
    in_size: tuple[int, ...] = ()
    bias: bool = True
    source: int | None = None
    shortcut: int | None = None
    pool: int = 1
    gap: bool = False
    norm: bool = False

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise SpecError(f"layer `kind` must be one of {list(LAYER_KINDS)}, got {self.kind!r}")
        for name in ("in_ch", "out_ch", "groups", "pool"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(f"layer `{name}` must be a positive integer, got {v!r}", field=name)
        check_bits("wbits", self.wbits)
        if self.abits is not None:
            check_bits("abits", self.abits)
        # JSON round trips turn tuples into lists: normalise so equality and hashing hold.
        for name in ("kernel", "stride", "padding", "in_size"):
            object.__setattr__(self, name, _tuple_of_ints(name, getattr(self, name)))
        dims = self.dims
        for name in ("kernel", "stride", "padding", "in_size"):
            if len(getattr(self, name)) != dims:
                raise SpecError(
                    f"a {self.kind} layer needs `{name}` of length {dims}, "
                    f"got {getattr(self, name)!r}",
                    field=name,
                )
        if self.in_ch % self.groups or self.out_ch % self.groups:
            raise SpecError(
                f"layer `groups` must divide in_ch={self.in_ch} and out_ch={self.out_ch}, "
                f"got {self.groups}",
                field="groups",
            )
        if dims and any(o < 1 for o in self.out_size):
            raise SpecError(
                f"{self.kind} layer with input size {self.in_size}, kernel {self.kernel}, "
                f"stride {self.stride}, padding {self.padding} has empty output {self.out_size}"
            )
        if self.pool > 1 and (
            self.dims == 0 or self.abits is None or any(o < self.pool for o in self.out_size)
        ):
            raise SpecError(
                f"`pool` {self.pool} needs a convolution with a neuron and an output of at least "
                f"that size, got {self.kind} with output {self.out_size}",
                field="pool",
            )
        for name in ("source", "shortcut"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < -1):
                raise SpecError(
                    f"layer `{name}` must be a layer index or -1, got {v!r}", field=name
                )

    @property
    def dims(self) -> int:
        return {"linear": 0, "conv1d": 1, "conv2d": 2}[self.kind]

    @property
    def out_size(self) -> tuple[int, ...]:
        """Spatial output size: floor((i + 2p - k) / s) + 1 per dimension (before pooling)."""
        return tuple(
            (i + 2 * p - k) // s + 1
            for i, k, s, p in zip(self.in_size, self.kernel, self.stride, self.padding, strict=True)
        )

    @property
    def site_shape(self) -> tuple[int, ...]:
        """Shape of this layer's activations as the next layers see them (after pooling)."""
        return (self.out_ch, *(o // self.pool for o in self.out_size))


@dataclass(frozen=True)
class NeuronSpec:
    """Settings of the multi-level integrate-and-fire neuron shared by all activation sites.

    ``leak`` is the membrane decay per step (1.0: IF, < 1: LIF). ``v_init`` is the initial
    membrane potential as a fraction of the threshold: 0.5 makes a T=1 site a *rounding*
    quantizer instead of a flooring one (as in QCFS ANN-to-SNN conversion) and centres the
    spike-count error for T > 1.
    """

    leak: float = 1.0
    v_init: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.leak, (int, float)) or not (0.0 < self.leak <= 1.0):
            raise SpecError(f"`leak` must be in (0, 1], got {self.leak!r}", field="leak")
        if not isinstance(self.v_init, (int, float)) or not (0.0 <= self.v_init < 1.0):
            raise SpecError(f"`v_init` must be in [0, 1), got {self.v_init!r}", field="v_init")
        # 1 and 1.0 compare equal but serialise differently: keep keys stable.
        object.__setattr__(self, "leak", float(self.leak))
        object.__setattr__(self, "v_init", float(self.v_init))


@dataclass(frozen=True)
class Architecture:
    """A fully resolved network: what is trained, costed and stored with a trial.

    Frozen and JSON round-trippable: ``Architecture.from_json(a.to_json()) == a``.
    """

    family: str
    input_shape: tuple[int, ...]
    num_classes: int
    layers: tuple[LayerSpec, ...]
    timesteps: int = 1
    input_encoding: Encoding = "direct"
    input_bits: int = 8
    neuron: NeuronSpec = field(default_factory=NeuronSpec)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", _tuple_of_ints("input_shape", self.input_shape))
        layers = tuple(LayerSpec(**lay) if isinstance(lay, Mapping) else lay for lay in self.layers)
        object.__setattr__(self, "layers", layers)
        if isinstance(self.neuron, Mapping):
            object.__setattr__(self, "neuron", NeuronSpec(**self.neuron))
        if not layers:
            raise SpecError("an architecture needs at least one layer", field="layers")
        for i, lay in enumerate(layers):
            if not isinstance(lay, LayerSpec):
                raise SpecError(f"layer {i} must be a LayerSpec, got {type(lay).__name__}")
        if layers[-1].kind != "linear":
            raise SpecError(
                f"the read-out (last layer) must be linear, got {layers[-1].kind}", field="kind"
            )
        if layers[-1].abits is not None:
            raise SpecError(
                "the last layer is the read-out and has no neuron (abits = None), "
                f"got abits={layers[-1].abits!r}",
                field="abits",
            )
        if layers[-1].out_ch != self.num_classes:
            raise SpecError(
                f"the read-out layer must have num_classes={self.num_classes} outputs, "
                f"got {layers[-1].out_ch}",
                field="num_classes",
            )
        _check_graph(tuple(self.input_shape), layers)
        t = self.timesteps
        if isinstance(t, bool) or not isinstance(t, int) or t < 1:
            raise SpecError(f"`timesteps` must be an integer >= 1, got {t!r}", field="timesteps")
        if self.input_encoding not in ENCODINGS:
            raise SpecError(
                f"`input_encoding` must be one of {list(ENCODINGS)}, got {self.input_encoding!r}",
                field="input_encoding",
            )
        check_bits("input_bits", self.input_bits)

    # -- views -------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Number of layers with a neuron (the read-out and projection shortcuts excluded)."""
        return sum(lay.abits is not None for lay in self.layers)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(lay.out_ch for lay in self.layers if lay.abits is not None)

    @property
    def wbits(self) -> tuple[int, ...]:
        return tuple(lay.wbits for lay in self.layers)

    @property
    def abits(self) -> tuple[int, ...]:
        return tuple(lay.abits for lay in self.layers[:-1] if lay.abits is not None)

    def source_of(self, i: int) -> int:
        """Index of the activation site layer ``i`` reads; -1 is the network input."""
        src = self.layers[i].source
        return i - 1 if src is None else src

    def summary(self) -> str:
        """One line for tables: ``mlp 64-128(w4a2)-64(w8a1)-10(w8) T=4 direct``; convolutions
        show their kernel (``16k5``), projection shortcuts are marked ``p``."""
        shape = self.input_shape
        parts = [str(shape[0]) if len(shape) == 1 else "x".join(map(str, shape))]
        if self.family == "mlp":
            parts = [str(math.prod(shape))]
        for lay in self.layers:
            bits = f"w{lay.wbits}" + (f"a{lay.abits}" if lay.abits is not None else "")
            k = f"k{lay.kernel[0]}" if lay.kernel else ""
            mark = "p" if lay.abits is None and lay is not self.layers[-1] else ""
            parts.append(f"{mark}{lay.out_ch}{k}({bits})")
        return f"{self.family} {'-'.join(parts)} T={self.timesteps} {self.input_encoding}"

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        # what dataclasses.asdict returns, built without its per-leaf deep copies (asdict
        # cost 2.8 ms an architecture; a trial keys its architecture several times, and an
        # unseen draw keys up to 20,000)
        out = _plain(self)
        assert isinstance(out, dict)
        return out

    def to_json(self) -> str:
        # an architecture is frozen: its JSON (and so its key) is computed once
        cached = self.__dict__.get("_json")
        if cached is None:
            cached = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
            self.__dict__["_json"] = cached
        return str(cached)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        return cls(**dict(data))

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        return cls.from_dict(json.loads(text))

    def key(self) -> str:
        """A short stable digest of the architecture, equal for equal architectures."""
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:16]


def _plain(v: Any) -> Any:
    """``dataclasses.asdict`` for the frozen value types of this module: dataclasses to
    dicts, tuples and lists rebuilt, scalars as they are (immutable: nothing to copy)."""
    if is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in fields(v)}
    if isinstance(v, tuple | list):
        return type(v)(_plain(x) for x in v)
    if isinstance(v, dict):
        return {_plain(k): _plain(x) for k, x in v.items()}
    return v


def _check_graph(input_shape: tuple[int, ...], layers: tuple[LayerSpec, ...]) -> None:
    """Every layer reads an existing activation site of the shape it expects; every layer
    without a neuron is the read-out or the projection shortcut of exactly one later layer."""
    shapes: dict[int, tuple[int, ...]] = {-1: input_shape}
    used_as_projection: dict[int, int] = {}
    n = len(layers)
    for i, lay in enumerate(layers):
        src = i - 1 if lay.source is None else lay.source
        where = f"layer {i} ({lay.kind})"
        if not -1 <= src < i:
            raise SpecError(f"{where} reads `source` {src}, which is not an earlier layer or -1")
        if src >= 0 and layers[src].abits is None:
            raise SpecError(f"{where} reads layer {src}, which has no neuron (abits = None)")
        fed = shapes[src]
        what = "the input" if src == -1 else f"layer {src}"
        if lay.kind == "linear":
            want = fed[0] if (lay.gap and len(fed) > 1) else math.prod(fed)
            if lay.in_ch != want:
                raise SpecError(
                    f"{where} takes {lay.in_ch} inputs but {what} gives {want} "
                    f"({'pooled ' if lay.gap else ''}shape {fed})",
                    field="in_ch",
                )
        elif (lay.in_ch, *lay.in_size) != fed:
            raise SpecError(
                f"{where} expects input {(lay.in_ch, *lay.in_size)} but {what} gives {fed}",
                field="in_size",
            )
        if lay.shortcut is not None:
            j = lay.shortcut
            if not 0 <= j < i:
                raise SpecError(f"{where} has `shortcut` {j}, which is not an earlier layer")
            if lay.abits is None:
                raise SpecError(f"{where} has a shortcut but no neuron to add it before")
            theirs = shapes[j] if layers[j].abits is not None else layers[j].site_shape
            if theirs != lay.site_shape or lay.pool != 1:
                raise SpecError(
                    f"{where} adds shortcut layer {j} of shape {theirs} to its own "
                    f"{lay.site_shape} (shapes must match, without pooling)"
                )
            if layers[j].abits is None:
                used_as_projection[j] = used_as_projection.get(j, 0) + 1
        shapes[i] = lay.site_shape
    for i, lay in enumerate(layers[:-1]):
        if lay.abits is None and used_as_projection.get(i) != 1:
            raise SpecError(
                f"layer {i} of {n} has no neuron (abits = None), so it must be the read-out or "
                f"the shortcut of exactly one later layer"
            )
