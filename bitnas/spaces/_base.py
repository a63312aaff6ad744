"""The abstract search space: what every model family's space promises."""

from __future__ import annotations

import abc
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from bitnas.spaces.architecture import Architecture
from bitnas.spaces.choosers import (
    Chooser,
    EnumeratingChooser,
    ParamsChooser,
    RecordingChooser,
    TrialChooser,
)

__all__ = ["SearchSpace"]


class SearchSpace(abc.ABC):
    """A finite, define-by-run space of architectures.

    Subclasses implement ``build(choose)`` once; sampling, rebuilding from parameters and
    enumeration all go through it, so they can never disagree.
    """

    family: str

    @abc.abstractmethod
    def build(self, choose: Chooser) -> Architecture:
        """Make every choice through ``choose`` and return the resulting architecture."""

    @abc.abstractmethod
    def size(self) -> int:
        """Number of distinct parameter assignments (= architectures) in the space."""

    @abc.abstractmethod
    def uniform_chooser(self, rng: random.Random) -> Chooser:
        """A chooser whose ``build`` yields every architecture of the space equally often."""

    def sample_uniform(self, rng: random.Random) -> Architecture:
        """One architecture drawn uniformly from the whole space."""
        return self.build(self.uniform_chooser(rng))

    def sample_uniform_with_params(self, rng: random.Random) -> tuple[dict[str, Any], Architecture]:
        rec = RecordingChooser(self.uniform_chooser(rng))
        return rec.params, self.build(rec)

    def layer_policy(self) -> dict[str, Any]:
        """Conventions that shape costs and are recorded with every trial (e.g. fixed bits of
        the first and last layer). Empty by default."""
        return {}

    def sample(self, trial: Any) -> Architecture:
        """Sample through an Optuna trial; per-layer parameters exist only for existing layers."""
        return self.build(TrialChooser(trial))

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        """Rebuild the architecture a trial with these parameters trained."""
        return self.build(ParamsChooser(params))

    def grid_with_params(self) -> Iterator[tuple[dict[str, Any], Architecture]]:
        """Every (parameters, architecture) pair of the space, depth-first."""
        prefix: list[int] = []
        while True:
            enum = EnumeratingChooser(prefix)
            rec = RecordingChooser(enum)
            arch = self.build(rec)
            yield rec.params, arch
            # Advance like an odometer over the choices this path actually made.
            idx = enum.prefix[: len(enum.arity)] + [0] * (len(enum.arity) - len(enum.prefix))
            j = len(idx) - 1
            while j >= 0 and idx[j] + 1 >= enum.arity[j]:
                j -= 1
            if j < 0:
                return
            prefix = [*idx[:j], idx[j] + 1]

    def grid(self) -> Iterator[Architecture]:
        """Every architecture of the space, each once."""
        for _, arch in self.grid_with_params():
            yield arch

    def extremes(self, cost: Callable[[Architecture], float]) -> tuple[Architecture, Architecture]:
        """(cheapest, dearest) architecture under ``cost``; enumerates the space."""
        lo = hi = None
        lo_c = hi_c = 0.0
        for arch in self.grid():
            c = cost(arch)
            if lo is None or c < lo_c:
                lo, lo_c = arch, c
            if hi is None or c > hi_c:
                hi, hi_c = arch, c
        assert lo is not None and hi is not None  # a space has at least one architecture
        return lo, hi
