"""The Markdown pieces of ``bitnas report``: number formats, tables, short study tags, and the
text of the iso-budget cells and of each budget's verdict (which family wins, and how clearly).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean

from bitnas.spaces.allocation import ALLOCATIONS
from bitnas.studies.report_measures import IsoCell
from bitnas.studies.report_records import Source

__all__ = ["_acc", "_fmt_ops", "_iso_text", "_md_table", "_short_names", "_verdicts", "_winners"]


def _fmt_ops(x: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.0f}"


def _short_names(sources: Sequence[Source]) -> dict[str, str]:
    """Study name -> a short tag for tables: ``<family>/<budget>[/s<seed>]`` for sweep cells."""
    seeds = {s.seed for s in sources}
    out = {}
    for s in sources:
        if s.allocation is None or s.budget is None:
            out[s.name] = s.name
        else:
            tag = f"{s.allocation}/{_fmt_ops(s.budget)}"
            out[s.name] = tag + (f"/s{s.seed}" if len(seeds) > 1 else "")
    return out


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _acc(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _iso_text(c: IsoCell, win: bool = False) -> str:
    """A cell of the iso-budget table; ``win``: the budget's best family, the one in bold."""
    f = c.found
    if not f:
        return f"- (n={'+'.join(map(str, c.n))})"
    n = "+".join(map(str, c.n))
    b = "**" if win else ""
    if len(c.best) == 1:
        r = f[0]
        return f"{b}{r.val:.3f}{b} (#{r.number}, test {_acc(r.test)}, n={n})"
    vals = [r.val for r in f]
    tests = [r.test for r in f if r.test is not None]
    return (
        f"{b}{mean(vals):.3f}{b} (seeds {', '.join(f'{v:.3f}' for v in vals)}; "
        f"test {_acc(mean(tests) if tests else None)}; n={n})"
    )


def _winners(cells: Sequence[IsoCell]) -> set[tuple[str, float]]:
    """(family, budget) of the best (seed-mean) accuracy at each budget; ties all win."""
    best: dict[float, float] = {}
    for c in cells:
        if c.mean_val is not None:
            best[c.budget] = max(best.get(c.budget, c.mean_val), c.mean_val)
    return {
        (c.allocation, c.budget)
        for c in cells
        if c.mean_val is not None and c.mean_val == best[c.budget]
    }


def _verdicts(cells: Sequence[IsoCell], budgets: Sequence[float]) -> list[str]:
    """One line per budget: the family with the best (seed-mean) accuracy and its lead over
    each other family; with several seeds, whether the seeds' bests overlap (every seed of
    the winner above every seed of the other is the only lead called clear)."""
    out = []
    for b in budgets:
        here = [c for c in cells if c.budget == b and c.mean_val is not None]
        if not here:
            out.append(f"- {_fmt_ops(b)} BitOps: no feasible trial.")
            continue
        here.sort(key=lambda c: c.mean_val or 0.0, reverse=True)
        win = here[0]
        label = ALLOCATIONS.get(win.allocation).label
        parts = []
        for other in here[1:]:
            lead = (win.mean_val or 0.0) - (other.mean_val or 0.0)
            part = f"{other.allocation} by {lead:.3f}"
            if len(win.best) > 1 or len(other.best) > 1:
                clear = min(r.val for r in win.found) > max(r.val for r in other.found)
                part += " (clear: every seed ahead)" if clear else " (seeds overlap: within noise)"
            parts.append(part)
        text = f"- {_fmt_ops(b)} BitOps: **{label}** {win.mean_val:.3f}"
        if parts:
            text += ", ahead of " + ", ".join(parts)
        if len(win.best) == 1:
            text += " (one seed: no noise estimate)"
        missing = [c.allocation for c in cells if c.budget == b and c.mean_val is None]
        if missing:
            text += f"; no feasible trial for {', '.join(missing)}"
        out.append(text + ".")
    return out
