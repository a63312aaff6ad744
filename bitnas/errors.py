"""The exceptions bitnas raises for user-facing mistakes.

Every error states the condition, then the value, then where it came from, e.g.
"`wbits` must be one of [2, 4, 8], got 3 (in [space] of studies/x.toml)".
"""

from __future__ import annotations

__all__ = [
    "BitnasError",
    "BudgetError",
    "EvaluationError",
    "ExportError",
    "RegistryError",
    "SpecError",
    "StorageError",
    "TrialLimitError",
]


class BitnasError(Exception):
    """Root of every error bitnas raises on purpose."""


class SpecError(BitnasError, ValueError):
    """A study specification (file or code) holds an invalid value.

    ``field`` names the offending key, ``where`` the location ("[space] of studies/x.toml")
    once the loader knows it.
    """

    def __init__(self, message: str, *, field: str | None = None, where: str | None = None):
        self.message = message
        self.field = field
        self.where = where
        super().__init__(self._render())

    def _render(self) -> str:
        return f"{self.message} (in {self.where})" if self.where else self.message

    def located(self, where: str) -> SpecError:
        """The same error with its location set (an already located error keeps its own)."""
        if self.where:
            return self
        return type(self)(self.message, field=self.field, where=where)


class RegistryError(BitnasError, KeyError):
    """A name looked up in a registry (samplers, evaluators, datasets, ...) does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BudgetError(BitnasError):
    """The budget cannot be met: e.g. even the cheapest architecture of the space is over it."""


class StorageError(BitnasError):
    """The study storage cannot be opened, written, or holds an incompatible study."""


class ExportError(BitnasError):
    """Results could not be written where the user asked (unwritable path, a folder, ...)."""


class EvaluationError(BitnasError):
    """An evaluator could not produce metrics for an architecture (divergence, bad data, ...)."""


class TrialLimitError(EvaluationError):
    """A trial passed a cap of [limits] (wall time, memory), or its process died, and was
    stopped from outside."""
