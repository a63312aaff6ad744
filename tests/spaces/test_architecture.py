from __future__ import annotations

import dataclasses
import re

import pytest

from bitnas.errors import SpecError
from bitnas.spaces import Architecture, LayerSpec, NeuronSpec


def arch(**kw):
    base = dict(
        family="mlp",
        input_shape=(64,),
        num_classes=10,
        layers=(LayerSpec("linear", 64, 32, 4, 2), LayerSpec("linear", 32, 10, 8, None)),
        timesteps=4,
        input_encoding="rate",
        input_bits=8,
        neuron=NeuronSpec(leak=0.9),
    )
    base.update(kw)
    return Architecture(**base)


def test_json_round_trip_is_exact():
    a = arch()
    b = Architecture.from_json(a.to_json())
    assert b == a and b.key() == a.key()
    assert isinstance(b.layers[0], LayerSpec) and b.neuron.leak == 0.9


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch().timesteps = 2  # type: ignore[misc]


def test_summary_and_views():
    a = arch()
    assert a.summary() == "mlp 64-32(w4a2)-10(w8) T=4 rate"
    assert (a.depth, a.widths, a.wbits, a.abits) == (1, (32,), (4, 8), (2,))


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"timesteps": 0}, "`timesteps` must be an integer >= 1, got 0"),
        ({"input_encoding": "latency"}, "`input_encoding` must be one of"),
        ({"input_bits": 20}, "`input_bits` must be an integer bit width"),
        ({"num_classes": 11}, "read-out layer must have num_classes=11"),
        (
            {"layers": (LayerSpec("linear", 64, 10, 4, 2),)},
            "the last layer is the read-out and has no neuron (abits = None), got abits=2",
        ),
    ],
)
def test_invalid_architectures_name_the_field(kw, msg):
    with pytest.raises(SpecError, match=re.escape(msg)):
        arch(**kw)


def test_layer_bits_validated():
    with pytest.raises(
        SpecError,
        match=re.escape(
            "`wbits` must be an integer bit width in 1..16 or 32 (full precision), got 3.5"
        ),
    ):
        LayerSpec("linear", 4, 4, 3.5, 2)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"`abits`.*got 0"):
        LayerSpec("linear", 4, 4, 4, 0)
