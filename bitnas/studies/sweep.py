"""Sweeps: one study file, one Optuna study per (allocation family x budget x seed) cell.

A study file with a [sweep] section, e.g.

    [sweep]
    allocation = ["binary_spikes", "multibit_single_step", "multibit_spikes"]
    budgets = [500_000, 1_000_000, 2_000_000]
    seeds = [0, 1]              # optional; default: the [study] seed only

runs, in the file's storage, one study per cell named ``<name>/<allocation>/<budget>`` (with
``/seed<k>`` appended when ``seeds`` lists more than one seed). Every cell gets the [study]
trial count, its family's restricted space (``bitnas.spaces.allocation.restrict``) and its
budget, so families are compared on equal terms: same trials, same budget, same training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bitnas.errors import SpecError
from bitnas.spaces.allocation import ORDER, restrict
from bitnas.spaces.budget import Budget
from bitnas.spaces.cost import bitops

if TYPE_CHECKING:
    from bitnas.studies.api import StudyResult
    from bitnas.studies.spec import StudySpec

__all__ = ["Cell", "SweepSection", "cells", "run_sweep"]

MAX_CELLS = 1000


def _int_list(name: str, value: Any, *, low: int, allow_empty: bool = False) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or (not value and not allow_empty):
        raise SpecError(f"`{name}` must be a non-empty list of integers, got {value!r}", field=name)
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise SpecError(
                f"every `{name}` entry must be an integer >= {low}, got {v!r}", field=name
            )
    if len(set(value)) != len(value):
        raise SpecError(f"`{name}` must not repeat an entry, got {list(value)}", field=name)
    return tuple(value)


@dataclass(frozen=True)
class SweepSection:
    """[sweep]: the allocation families, budgets (dense BitOps) and seeds to cross."""

    allocation: tuple[str, ...] = ORDER
    budgets: tuple[int, ...] = ()
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        alloc = self.allocation
        if isinstance(alloc, str):
            alloc = (alloc,)
        if not isinstance(alloc, (list, tuple)) or not alloc:
            raise SpecError(
                f"`allocation` must be a non-empty list of families from {list(ORDER)}, "
                f"got {alloc!r}",
                field="allocation",
            )
        for a in alloc:
            if a not in ORDER:
                raise SpecError(
                    f"every `allocation` entry must be one of {list(ORDER)}, got {a!r}",
                    field="allocation",
                )
        if len(set(alloc)) != len(alloc):
            raise SpecError(
                f"`allocation` must not repeat a family, got {list(alloc)}", field="allocation"
            )
        object.__setattr__(self, "allocation", tuple(alloc))
        object.__setattr__(self, "budgets", _int_list("budgets", self.budgets, low=1))
        seeds = _int_list("seeds", self.seeds, low=0, allow_empty=True)
        object.__setattr__(self, "seeds", seeds)
        n = len(self.allocation) * len(self.budgets) * max(1, len(seeds))
        if n > MAX_CELLS:
            raise SpecError(f"a sweep may have at most {MAX_CELLS} cells, got {n}")


@dataclass(frozen=True)
class Cell:
    """One cell of a sweep: the study name it runs under and what it fixes."""

    name: str
    allocation: str
    budget: int
    seed: int


def cell_name(base: str, allocation: str, budget: int, seed: int, many_seeds: bool) -> str:
    return f"{base}/{allocation}/{budget}" + (f"/seed{seed}" if many_seeds else "")


def cells(spec: StudySpec) -> list[tuple[Cell, StudySpec]]:
    """The cells of ``spec``'s sweep, by seed, then budget, then family, each with the plain
    (sweep-free) StudySpec that runs it. Raises SpecError if a family's cheapest architecture
    is over a budget, naming both."""
    sw = spec.sweep
    if sw is None:
        raise SpecError(f"{spec.source or 'the study spec'} has no [sweep] section")
    seeds = sw.seeds or (spec.study.seed,)
    out = []
    where = f"[sweep] of {spec.source or 'the study spec'}"
    spaces = {}
    for alloc in sw.allocation:
        try:
            spaces[alloc] = restrict(spec.space, alloc)
        except SpecError as e:
            raise e.located(where) from None
        cheapest = bitops(spaces[alloc].extremes(bitops)[0])
        if cheapest > min(sw.budgets):
            raise SpecError(
                f"no {alloc} architecture fits the budget of {min(sw.budgets):,} BitOps: the "
                f"cheapest costs {cheapest:,}; raise the budget or narrow the space",
                field="budgets",
                where=where,
            )
    # seed-major: an interrupted sweep has whole seeds done, not a ragged mix
    for seed in seeds:
        for budget in sw.budgets:
            for alloc in sw.allocation:
                name = cell_name(spec.study.name, alloc, budget, seed, len(seeds) > 1)
                study = dataclasses.replace(spec.study, name=name, seed=seed)
                cell_spec = dataclasses.replace(
                    spec, study=study, space=spaces[alloc], budget=Budget(budget), sweep=None
                )
                out.append((Cell(name, alloc, budget, seed), cell_spec))
    return out


def run_sweep(
    spec: StudySpec, *, on_cell: Any = None, **run_options: Any
) -> list[tuple[Cell, StudyResult]]:
    """Run every cell of ``spec``'s sweep to its trial count (continuing stored cells);
    ``run_options`` go to ``bitnas.run`` (trials, storage, progress, ...). ``on_cell(cell,
    result)`` is called after each cell."""
    from bitnas.studies.api import run

    done = []
    for cell, cell_spec in cells(spec):
        result = run(cell_spec, **run_options)
        done.append((cell, result))
        if on_cell is not None:
            on_cell(cell, result)
    return done


def sweep_names(spec: StudySpec) -> Sequence[str]:
    return [c.name for c, _ in cells(spec)]
