from __future__ import annotations

import optuna
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bitnas.errors import SpecError
from bitnas.spaces import CNN1DSpace, CNN2DSpace, bitops, macs, weight_bits


def test_hand_computed_cnn1d():
    s = CNN1DSpace(input_shape=(1, 40), num_classes=10, stages=2, depth=(1,), width=(8,),
                   kernel=(5,), wbits=(4,), abits=(2,), timesteps=(2,), pool=2)  # fmt: skip
    (a,) = list(s.grid())
    # conv 1->8 k5 on 40 (same padding), pool to 20; conv 8->8 k5 on 20, pool to 10; fc 80->10
    assert macs(a) == (40 * 8 * 1 * 5, 20 * 8 * 8 * 5, 80 * 10)
    assert bitops(a) == 1600 * 4 * 8 + 6400 * 4 * (2 * 2) + 800 * 4 * (2 * 2)
    assert a.layers[-1].in_ch == 80


@given(
    stages=st.tuples(st.integers(1, 2), st.integers(0, 1)).map(lambda t: (t[0], t[0] + t[1])),
    depth=st.lists(st.sampled_from([1, 2]), min_size=1, max_size=2, unique=True),
    width=st.lists(st.sampled_from([2, 3]), min_size=1, max_size=2, unique=True),
    per_stage=st.booleans(),
    per_layer=st.booleans(),
    readout=st.sampled_from(["flatten", "gap"]),
    first=st.sampled_from(["search", 8]),
    two_d=st.booleans(),
)
@settings(max_examples=40, deadline=None)
def test_size_grid_extremes_agree(
    stages, depth, width, per_stage, per_layer, readout, first, two_d
):
    cls, shape = (CNN2DSpace, (1, 4, 4)) if two_d else (CNN1DSpace, (1, 8))
    s = cls(input_shape=shape, num_classes=3, stages=stages, depth=depth, width=width,
            width_per_stage=per_stage, kernel=(1, 3), wbits=(2, 4), abits=(1, 2),
            wbits_per_layer=per_layer, abits_per_layer=per_layer, timesteps=(1, 2),
            readout=readout, first_wbits=first, last_wbits=4)  # fmt: skip
    assume(s.size() <= 3000)  # enumerating bigger spaces only costs time
    pairs = list(s.grid_with_params())
    assert len(pairs) == s.size()
    assert len({a.key() for _, a in pairs}) == len(pairs)
    for params, a in pairs[:: max(1, len(pairs) // 10)]:
        assert s.from_params(params) == a
        assert a.layers[-1].wbits == 4
        if first == 8:
            assert a.layers[0].wbits == 8
    for cost in (bitops, weight_bits):
        lo, hi = s.extremes(cost)
        costs = [cost(a) for _, a in pairs]
        assert cost(lo) == min(costs) and cost(hi) == max(costs)


def test_define_by_run_stage_parameters():
    s = CNN1DSpace(input_shape=(1, 40), num_classes=10, stages=(1, 3), depth=(1, 2))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        a = s.sample(trial)
        n = trial.params["stages"]
        for st_ in range(3):
            assert (f"depth_{st_}" in trial.params) == (st_ < n)
        convs = len(a.layers) - 1
        assert all((f"abits_{i}" in trial.params) == (i < convs) for i in range(7))
        assert s.from_params(trial.params) == a
        study.tell(trial, 0.0)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"kernel": (4,)}, "every `kernel` choice must be odd"),
        ({"readout": "attention"}, "`readout` must be one of ['flatten', 'gap']"),
        ({"input_shape": (40,)}, "the cnn1d family needs inputs shaped (channels, length)"),
        ({"first_wbits": "fixed"}, '`first_wbits` must be "search" or a bit width'),
        ({"stages": (0, 2)}, "`stages` must be an inclusive range"),
    ],
)
def test_bad_cnn_values(kw, msg):
    import re

    base = {"input_shape": (1, 40), "num_classes": 10, **kw}
    with pytest.raises(SpecError, match=re.escape(msg)):
        CNN1DSpace(**base)
