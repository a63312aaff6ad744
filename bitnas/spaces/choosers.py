"""Choosers: the one interface through which a search space makes its choices.

A space's ``build(choose)`` is written once, define-by-run, and works for an Optuna trial
(sampling), a dict of parameters (rebuilding a stored trial), exhaustive enumeration (``grid``)
and uniform random draws, because each of those is just a different chooser. Optuna's own
``GridSampler`` needs the whole search space up front and cannot follow conditional parameters,
which is why enumeration is done here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from bitnas.errors import SpecError

__all__ = [
    "Chooser",
    "EnumeratingChooser",
    "ExtremeChooser",
    "ParamsChooser",
    "RandomChooser",
    "RecordingChooser",
    "TrialChooser",
]

T = TypeVar("T")


class Chooser(Protocol):
    def integer(self, name: str, low: int, high: int) -> int:
        """Choose an integer in [low, high] (ordered)."""

    def categorical(self, name: str, choices: Sequence[T]) -> T:
        """Choose one of ``choices`` (unordered)."""


class TrialChooser:
    """Asks an Optuna trial (anything with ``suggest_int``/``suggest_categorical``).

    A choice with a single option is a constant: it is returned without creating a parameter,
    so studies do not fill with parameters that never vary.
    """

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def integer(self, name: str, low: int, high: int) -> int:
        if low == high:
            return low
        return int(self.trial.suggest_int(name, low, high))

    def categorical(self, name: str, choices: Sequence[T]) -> T:
        if len(choices) == 1:
            return choices[0]
        return self.trial.suggest_categorical(name, list(choices))  # type: ignore[no-any-return]


class ParamsChooser:
    """Replays stored parameters, e.g. ``FrozenTrial.params``; a missing or foreign value is an
    error naming the parameter."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise SpecError(f"parameter `{name}` is missing from {sorted(self.params)}", field=name)
        return self.params[name]

    def integer(self, name: str, low: int, high: int) -> int:
        if low == high:
            return low
        v = self._get(name)
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise SpecError(f"parameter `{name}` must be in [{low}, {high}], got {v!r}", field=name)
        return v

    def categorical(self, name: str, choices: Sequence[T]) -> T:
        if len(choices) == 1:
            return choices[0]
        v = self._get(name)
        if v not in choices:
            raise SpecError(f"parameter `{name}` must be one of {list(choices)}, got {v!r}")
        return v  # type: ignore[no-any-return]


class RecordingChooser:
    """Wraps a chooser and records the parameters it chose (constants are not recorded)."""

    def __init__(self, inner: Chooser) -> None:
        self.inner = inner
        self.params: dict[str, Any] = {}

    def integer(self, name: str, low: int, high: int) -> int:
        v = self.inner.integer(name, low, high)
        if low != high:
            self.params[name] = v
        return v

    def categorical(self, name: str, choices: Sequence[T]) -> T:
        v = self.inner.categorical(name, choices)
        if len(choices) > 1:
            self.params[name] = v
        return v


class EnumeratingChooser:
    """One path of a depth-first walk over every sequence of choices.

    ``prefix`` fixes the first choices (as option indices); later choices take option 0 and the
    number of options is recorded in ``arity`` so the walker can advance to the next path.
    """

    def __init__(self, prefix: Sequence[int]) -> None:
        self.prefix = list(prefix)
        self.arity: list[int] = []

    def _pick(self, options: Sequence[T]) -> T:
        i = len(self.arity)
        self.arity.append(len(options))
        return options[self.prefix[i] if i < len(self.prefix) else 0]

    def integer(self, name: str, low: int, high: int) -> int:
        return self._pick(range(low, high + 1))

    def categorical(self, name: str, choices: Sequence[T]) -> T:
        return self._pick(choices)


class RandomChooser:
    """Uniform independent choices from a ``random.Random`` (no Optuna involved)."""

    def __init__(self, rng: Any) -> None:
        self.rng = rng

    def integer(self, name: str, low: int, high: int) -> int:
        return int(self.rng.randint(low, high))

    def categorical(self, name: str, choices: Sequence[T]) -> T:
        i: int = self.rng.randrange(len(choices))
        return choices[i]


class ExtremeChooser:
    """Picks the smallest (``pick=min``) or largest option of every numeric choice.

    Choices named in ``fixed`` take that value instead, and non-numeric choices not named there
    take their first option, so a caller can try each structure and encoding. Finds the
    cheapest/dearest architecture of a space whose cost grows with every numeric choice,
    without enumerating the space.
    """

    def __init__(self, pick: Any, fixed: Mapping[str, Any] | None = None) -> None:
        self.pick = pick
        self.fixed = dict(fixed or {})

    def integer(self, name: str, low: int, high: int) -> int:
        if name in self.fixed:
            return int(self.fixed[name])
        return int(self.pick(low, high))

    def categorical(self, name: str, choices: Sequence[T]) -> T:
        if name in self.fixed:
            return self.fixed[name]  # type: ignore[no-any-return]
        if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices):
            return self.pick(choices)  # type: ignore[no-any-return]
        return self.fixed.get(name, choices[0])  # type: ignore[no-any-return]
