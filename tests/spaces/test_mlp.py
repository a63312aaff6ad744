from __future__ import annotations

import random
import re

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitnas.errors import SpecError
from bitnas.spaces import MLPSpace, bitops, weight_bits
from tests.conftest import small_space


def test_size_matches_enumeration_and_grid_is_unique():
    s = small_space()
    archs = list(s.grid())
    assert len(archs) == s.size()
    assert len({a.key() for a in archs}) == len(archs)
    # depth 1: 2 T * 2 widths * 2^2 wbits * 2 abits; depth 2: 2 * 2 * 2^3 * 2^2
    assert s.size() == 2 * 2 * 4 * 2 + 2 * 2 * 8 * 4


@given(
    depth=st.tuples(st.integers(1, 2), st.integers(0, 1)).map(lambda t: (t[0], t[0] + t[1])),
    width=st.lists(st.sampled_from([8, 16, 24]), min_size=1, max_size=2, unique=True),
    wbits=st.lists(st.sampled_from([1, 2, 4, 32]), min_size=1, max_size=2, unique=True),
    abits=st.lists(st.sampled_from([1, 3, 32]), min_size=1, max_size=2, unique=True),
    timesteps=st.lists(st.sampled_from([1, 2, 5]), min_size=1, max_size=2, unique=True),
    per_layer=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    enc=st.lists(st.sampled_from(["direct", "rate"]), min_size=1, max_size=2, unique=True),
)
@settings(max_examples=60, deadline=None)
def test_size_grid_extremes_agree(depth, width, wbits, abits, timesteps, per_layer, enc):
    s = MLPSpace(
        input_shape=(12,),
        num_classes=3,
        depth=depth,
        width=width,
        wbits=wbits,
        abits=abits,
        timesteps=timesteps,
        width_per_layer=per_layer[0],
        wbits_per_layer=per_layer[1],
        abits_per_layer=per_layer[2],
        input_encoding=enc,
        input_bits=4,
    )
    pairs = list(s.grid_with_params())
    assert len(pairs) == s.size()
    assert len({a.key() for _, a in pairs}) == len(pairs)
    for params, a in pairs[:: max(1, len(pairs) // 20)]:
        assert s.from_params(params) == a
    for cost in (bitops, weight_bits):
        lo, hi = s.extremes(cost)
        costs = [cost(a) for _, a in pairs]
        assert cost(lo) == min(costs) and cost(hi) == max(costs)


def test_sample_is_define_by_run_with_optuna():
    s = small_space(depth=(1, 3), width_per_layer=True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    depths = set()
    for _ in range(40):
        trial = study.ask()
        a = s.sample(trial)
        depths.add(a.depth)
        keys = set(trial.params)
        # per-layer parameters exist exactly for the layers that exist
        for i in range(3):
            assert (f"width_{i}" in keys) == (i < a.depth)
            assert (f"abits_{i}" in keys) == (i < a.depth)
            assert (f"wbits_{i}" in keys) == (i < a.depth)
        assert "wbits_out" in keys
        assert s.from_params(trial.params) == a
        study.tell(trial, 0.0)
    assert depths == {1, 2, 3}


def test_single_choices_are_constants_not_parameters():
    s = small_space(timesteps=(4,), depth=(2, 2), input_encoding="rate")
    study = optuna.create_study()
    trial = study.ask()
    a = s.sample(trial)
    assert "timesteps" not in trial.params and "depth" not in trial.params
    assert a.timesteps == 4 and a.depth == 2 and a.input_encoding == "rate"


def test_sample_uniform_stays_in_space():
    s = small_space()
    keys = {a.key() for a in s.grid()}
    rng = random.Random(0)
    drawn = [s.sample_uniform(rng).key() for _ in range(300)]
    assert set(drawn) <= keys and len(set(drawn)) > 20


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"depth": (2, 1)}, "`depth` must be an inclusive range"),
        (
            {"wbits": (2, 3.0)},
            "`wbits` must be an integer bit width in 1..16 or 32 (full precision), got 3.0",
        ),
        ({"abits": ()}, "`abits` must list at least one choice"),
        ({"width": (16, 16)}, "`width` must not repeat a choice"),
        ({"timesteps": (0,)}, "every `timesteps` choice must be an integer"),
        ({"input_encoding": ("poisson",)}, "`input_encoding` must be one of"),
        ({"wbits_per_layer": "yes"}, "`wbits_per_layer` must be true or false"),
    ],
)
def test_bad_space_values(kw, msg):
    with pytest.raises(SpecError, match=re.escape(msg)):
        small_space(**kw)
