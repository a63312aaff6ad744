"""TrainSpec and DataSpec validate every field with a message naming it and the value."""

from __future__ import annotations

import pytest

from bitnas.errors import SpecError
from bitnas.evaluators import TrainSpec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"until": "plateau"}, r"`until` must be one of \['epochs', 'converged'\], got 'plateau'"),
        ({"patience": 0}, r"`patience` must be an integer >= 1, got 0"),
        ({"min_delta": -0.1}, r"`min_delta` must be a number >= 0, got -0.1"),
        ({"lr": []}, r"`lr` must be a number or a non-empty list of numbers, got \[\]"),
        ({"lr": [1e-3, 1e-3]}, r"`lr` must not repeat a rate, got \[0.001, 0.001\]"),
        ({"lr": [1e-3, 0]}, r"`lr` must be a number > 0, got 0"),
        ({"lr": "fast"}, r"`lr` must be a number > 0, got 'fast'"),
    ],
)
def test_bad_training_settings_name_field_and_value(kwargs, message):
    with pytest.raises(SpecError, match=message) as e:
        TrainSpec(**kwargs)
    assert e.value.field == next(iter(kwargs))


def test_learning_rate_list_is_a_tuple_and_lrs_lists_the_rates():
    assert TrainSpec(lr=[1e-3, 3e-3]).lr == (1e-3, 3e-3)
    assert TrainSpec(lr=[1e-3, 3e-3]).lrs == (1e-3, 3e-3)
    assert TrainSpec(lr=0.01).lrs == (0.01,)
    hash(TrainSpec(lr=[1e-3, 3e-3]))  # frozen specs stay hashable
