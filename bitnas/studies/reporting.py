"""``bitnas report``: a self-contained Markdown report with PNG figures for a study or a sweep.

Definitions used throughout (they are also written into every report):

- *Trials* are the COMPLETE trials that trained (repeated proposals answered from an earlier
  trial are not counted again); *feasible* ones are within their study's budget.
- *Allocation family* of a trial: ``bitnas.spaces.allocation.allocation_of`` (T = 1 is
  single-step; with T > 1, binary if abits = 1 at every site, else multi-bit spikes).
- *Front*: the non-dominated feasible trials in (validation accuracy up, dense BitOps down).
- *Knee*: with the front's log10(dense BitOps) and accuracy each scaled to [0, 1] over the
  front, the front point farthest above the chord joining the cheapest and the most accurate
  point (needs three points or more).
- *Hypervolume*: of the feasible trials so far, the bitnas hypervolume
  (``bitnas.search.pareto.front_hypervolume``: accuracy x log BitOps, reference (0, budget));
  the reference cost is the study's budget (or the dearest feasible trial when it has none),
  the log axis starts at half the cheapest trial's cost, so the hypervolume lies in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from bitnas.errors import ExportError, SpecError, StorageError
from bitnas.search.pareto import pareto_mask
from bitnas.search.trials import ATTR_ARCH, ATTR_DUPLICATE, ATTR_KEY
from bitnas.spaces.allocation import ALLOCATIONS, ORDER, allocation_of
from bitnas.spaces.architecture import Architecture
from bitnas.spaces.cost import event_bitops
from bitnas.studies.bitplanes import bitplane_section

__all__ = [
    "Record",
    "Source",
    "hypervolume_history",
    "iso_budget",
    "knee",
    "pareto_front",
    "records",
    "report",
    "write_report",
]

INFORMATION_EFFICIENT_DENSITY = 0.5


@dataclass(frozen=True)
class Record:
    """What the report needs of one trained trial."""

    study: str
    number: int
    allocation: str
    val: float
    test: float | None
    bitops: float
    event_bitops: float | None
    timesteps: int
    abits: tuple[int, ...]
    densities: tuple[float, ...] | None
    feasible: bool
    summary: str
    key: str


@dataclass(frozen=True)
class Source:
    """One study of a report; a sweep cell also names its family, budget and seed."""

    study: optuna.Study
    budget: float | None = None
    allocation: str | None = None
    seed: int | None = None
    records: tuple[Record, ...] = field(default=(), compare=False)

    @property
    def name(self) -> str:
        return self.study.study_name


def _record(study_name: str, t: FrozenTrial) -> Record:
    ua = t.user_attrs
    arch = Architecture.from_json(ua[ATTR_ARCH])
    dens = ua.get("densities")
    ev = ua.get("event_bitops")
    if ev is None and dens is not None:
        ev = event_bitops(arch, dens)
    assert t.values is not None
    return Record(
        study=study_name,
        number=t.number,
        allocation=allocation_of(arch.timesteps, arch.abits),
        val=float(t.values[0]),
        test=ua.get("test_accuracy"),
        bitops=float(t.values[1]),
        event_bitops=None if ev is None else float(ev),
        timesteps=arch.timesteps,
        abits=arch.abits,
        densities=None if dens is None else tuple(float(d) for d in dens),
        feasible=all(v <= 0.0 for v in t.constraints.values()),
        summary=str(ua.get("summary", arch.summary())),
        key=str(ua.get(ATTR_KEY, f"#{t.number}")),
    )


def records(study: optuna.Study) -> list[Record]:
    """The trained COMPLETE trials of ``study`` (duplicates excluded), by trial number."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.values is None or ATTR_DUPLICATE in t.user_attrs or ATTR_ARCH not in t.user_attrs:
            continue
        out.append(_record(study.study_name, t))
    return sorted(out, key=lambda r: r.number)


def _source(study: optuna.Study, budget: float | None, **kw: Any) -> Source:
    recs = tuple(records(study))
    if budget is None:
        stored = [t.user_attrs.get("budget_bitops") for t in study.get_trials(deepcopy=False)]
        budget = next((float(b) for b in stored if b is not None), None)
    return Source(study, budget, records=recs, **kw)


# -- the computations (pure functions of records) ---------------------------------------------


def pareto_front(recs: Sequence[Record]) -> list[Record]:
    """Non-dominated feasible records (one per architecture, the earliest), cheapest first."""
    unique: dict[str, Record] = {}
    for r in sorted(recs, key=lambda r: (r.study, r.number)):
        if r.feasible:
            unique.setdefault(r.key, r)
    pts = list(unique.values())
    if not pts:
        return []
    mask = pareto_mask(np.array([[r.val, r.bitops] for r in pts]), ["maximize", "minimize"])
    return sorted(
        (r for r, k in zip(pts, mask, strict=True) if k), key=lambda r: (r.bitops, -r.val)
    )


def knee(front: Sequence[Record]) -> Record | None:
    """The knee of a front (see the module docstring), or None for fewer than three points
    or a front with no point above its chord."""
    if len(front) < 3:
        return None
    x = np.log10(np.array([r.bitops for r in front]))
    y = np.array([r.val for r in front])
    span_x, span_y = float(np.ptp(x)), float(np.ptp(y))
    if span_x == 0.0 or span_y == 0.0:
        return None
    x, y = (x - x.min()) / span_x, (y - y.min()) / span_y
    # chord from the cheapest (x=0) to the most accurate point; distance above it
    i0, i1 = 0, int(np.argmax(y))
    dx, dy = x[i1] - x[i0], y[i1] - y[i0]
    dist = (dx * (y - y[i0]) - dy * (x - x[i0])) / math.hypot(dx, dy)
    best = int(np.argmax(dist))
    return front[best] if dist[best] > 1e-12 else None


def hypervolume_history(
    recs: Sequence[Record], budget: float, cost_min: float
) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the feasible trials up to it) for each record: the
    bitnas hypervolume of ``bitnas.search.pareto.front_hypervolume`` (accuracy x log BitOps,
    reference (0, ``budget``), cost normalised from ``cost_min``), the measure
    ``bench/search_quality.py`` uses too."""
    from bitnas.search.pareto import front_hypervolume

    # Only the non-dominated points so far are kept (the hypervolume of a set is that of its
    # front): a dominated trial leaves the value as it was, and a new front point costs one
    # hypervolume over the front, not over every trial before it (quadratic in the trials:
    # 250 s for a 1,000-trial study's report).
    acc: list[float] = []
    cost: list[float] = []
    out = []
    hv = 0.0
    for r in sorted(recs, key=lambda r: r.number):
        if r.feasible and not any(
            a >= r.val and c <= r.bitops for a, c in zip(acc, cost, strict=True)
        ):
            keep = [
                (a, c) for a, c in zip(acc, cost, strict=True) if not (r.val >= a and r.bitops <= c)
            ]
            acc = [a for a, _ in keep] + [r.val]
            cost = [c for _, c in keep] + [r.bitops]
            hv = front_hypervolume(acc, cost, budget=budget, cost_min=cost_min)
        out.append((r.number, hv))
    return out


def _hv_frame(s: Source) -> tuple[float, float]:
    """(reference cost, lowest cost) of a study's hypervolume: its budget (or its dearest
    feasible trial) and its cheapest trial, a little lower so the cheapest point counts."""
    feasible = [r.bitops for r in s.records if r.feasible] or [1.0]
    ref = s.budget or max(feasible)
    lo = min(min(r.bitops for r in s.records) if s.records else ref, ref) / 2
    return ref, lo


@dataclass(frozen=True)
class IsoCell:
    """Best trial of one family at one budget, per seed (one entry without a seed sweep)."""

    allocation: str
    budget: float
    best: tuple[Record | None, ...]
    n: tuple[int, ...]

    @property
    def found(self) -> list[Record]:
        return [r for r in self.best if r is not None]

    @property
    def mean_val(self) -> float | None:
        f = self.found
        return mean(r.val for r in f) if f else None


def iso_budget(
    sources: Sequence[Source], budgets: Sequence[float], allocations: Sequence[str] = ORDER
) -> list[IsoCell]:
    """Best validation accuracy per (family, budget), per seed group of sources.

    A source that is a sweep cell contributes only to its own family and budget; a plain study
    contributes every feasible trial of the family within the budget."""
    out = []
    for b in budgets:
        for a in allocations:
            groups: dict[int | None, list[Record]] = {}
            for s in sources:
                if s.allocation is not None and (s.allocation != a or s.budget != b):
                    continue
                groups.setdefault(s.seed, [])
                groups[s.seed] += [
                    r for r in s.records if r.allocation == a and r.feasible and r.bitops <= b
                ]
            if not groups:
                groups[None] = []
            bests = tuple(
                max(g, key=lambda r: (r.val, -r.bitops)) if g else None for g in groups.values()
            )
            out.append(IsoCell(a, b, bests, tuple(len(g) for g in groups.values())))
    return out


# -- rendering --------------------------------------------------------------------------------


def _fmt_ops(x: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.0f}"


def _abits_mark(abits: tuple[int, ...]) -> str:
    return f"abits={abits[0]}" if len(set(abits)) == 1 else "abits mixed"


def _plot_pareto(
    recs: Sequence[Record],
    front: Sequence[Record],
    k: Record | None,
    budgets: Sequence[float],
    path: Path,
) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    feas = [r for r in recs if r.feasible]
    steps = sorted({r.timesteps for r in feas})
    cmap = plt.get_cmap("viridis", max(len(steps), 2))
    colour = {t: cmap(i) for i, t in enumerate(steps)}
    marks = sorted({_abits_mark(r.abits) for r in feas})
    shapes = dict(zip(marks, "osD^vP*X", strict=False))
    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=110)
    for m in marks:
        for t in steps:
            pts = [r for r in feas if r.timesteps == t and _abits_mark(r.abits) == m]
            if pts:
                ax.scatter(
                    [r.bitops for r in pts],
                    [r.val for r in pts],
                    color=colour[t],
                    marker=shapes[m],
                    s=30,
                    alpha=0.75,
                    linewidths=0,
                )
    if front:
        ax.step(
            [r.bitops for r in front],
            [r.val for r in front],
            where="post",
            color="crimson",
            lw=1.5,
            zorder=3,
        )
        ax.scatter(
            [r.bitops for r in front],
            [r.val for r in front],
            facecolors="none",
            edgecolors="crimson",
            s=90,
            lw=1.5,
            zorder=4,
        )
    if k is not None:
        ax.annotate(
            f"knee #{k.number}",
            (k.bitops, k.val),
            xytext=(10, -22),
            textcoords="offset points",
            arrowprops={"arrowstyle": "->"},
            fontsize=9,
        )
    for b in budgets:
        ax.axvline(b, color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("dense BitOps per sample (log)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Feasible trials and Pareto front (dashed: budgets)")
    handles = [Line2D([], [], ls="", marker="o", color=colour[t], label=f"T={t}") for t in steps]
    handles += [Line2D([], [], ls="", marker=shapes[m], color="black", label=m) for m in marks]
    handles.append(Line2D([], [], color="crimson", marker="o", mfc="none", label="Pareto front"))
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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


def _plot_density(front: Sequence[Record], path: Path, short: dict[str, str]) -> None:
    import matplotlib.pyplot as plt

    fig = density_figure(front, short)
    fig.savefig(path)
    plt.close(fig)


def density_figure(front: Sequence[Record], short: dict[str, str]) -> Any:
    """The bit-density figure of ``front`` (a matplotlib Figure): one line per point, layer
    index on an integer axis."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    # tab10's ten distinct hues, then the same hues with other markers and dashes (tab20's
    # pairs of light and dark shades of one hue are hard to tell apart)
    colours, markers, dashes = plt.get_cmap("tab10"), "os^Dv", ("-", "--", ":")
    drawn = [r for r in front if r.densities is not None]
    for i, r in enumerate(drawn):
        assert r.densities is not None
        ax.plot(
            range(len(r.densities)),
            r.densities,
            color=colours(i % 10),
            marker=markers[(i // 10) % len(markers)],
            ls=dashes[(i // 50) % len(dashes)],
            lw=1,
            label=f"#{r.number} {short[r.study] if len(short) > 1 else ''} "
            f"T={r.timesteps} a={'/'.join(map(str, r.abits))}",
        )
    ax.axhline(INFORMATION_EFFICIENT_DENSITY, color="black", ls="--", lw=1, label="50%")
    ax.set_xlabel("layer (its input's bit density; 0 = the network input)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are whole numbers
    ax.set_ylabel("fraction of 1-bits")
    ax.set_ylim(0, 1)
    ax.set_title("Measured bit density per layer, front points")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _plot_hv(sources: Sequence[Source], path: Path) -> None:
    import matplotlib.pyplot as plt

    budgets = sorted({s.budget for s in sources if s.allocation is not None and s.budget})
    panels: list[float | None] = list(budgets) if budgets else [None]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels) + 1, 4), dpi=110, sharey=True, squeeze=False
    )
    colours = dict(zip(ORDER, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    styles = ["-", "--", ":", "-."]
    for ax, b in zip(axes[0], panels, strict=True):
        seeds = sorted({s.seed for s in sources if s.seed is not None})
        for s in sources:
            if b is not None and s.budget != b:
                continue
            hist = hypervolume_history(s.records, *_hv_frame(s))
            if not hist:
                continue
            c = colours.get(s.allocation or "", "black")
            ls = styles[seeds.index(s.seed) % len(styles)] if s.seed in seeds else "-"
            label = s.allocation or s.name
            if len(seeds) > 1:
                label += f" seed {s.seed}"
            # x: the n-th trained trial, so cells with different numbers of rejected
            # proposals line up
            ax.step(
                range(1, len(hist) + 1),
                [h[1] for h in hist],
                where="post",
                color=c,
                ls=ls,
                label=label,
            )
        ax.set_xlabel("trained trials")
        ax.set_title("hypervolume" + (f" at {_fmt_ops(b)} BitOps" if b else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("HV: accuracy x log BitOps, ref (0, budget)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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


def write_report(
    sources: Sequence[Source],
    out: str | Path,
    *,
    title: str,
    budgets: Sequence[float] | None = None,
) -> Path:
    """Write ``report.md``, ``pareto.png``, ``density.png`` and ``hypervolume.png`` into
    ``out`` for these studies; returns the Markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create --out {out}: {e.strerror or e}") from None
    recs = [r for s in sources for r in s.records]
    if budgets is None:
        top = next((s.budget for s in sources if s.budget), None)
        top = top or max((r.bitops for r in recs if r.feasible), default=0.0)
        budgets = [top / 4, top / 2, top] if top else []
    budgets = sorted(budgets)
    front = pareto_front(recs)
    k = knee(front)
    sweep = any(s.allocation is not None for s in sources)

    lines = [f"# {title}", ""]
    cells = iso_budget(sources, budgets)
    if sweep:
        lines += ["## Answer: best allocation at each budget", ""]
        lines += _verdicts(cells, budgets)
        lines += [""]
    lines += ["## Studies", ""]
    lines += _md_table(
        ["study", "family", "budget", "seed", "trials", "feasible"],
        [
            [
                f"`{s.name}`",
                s.allocation or "all",
                _fmt_ops(s.budget) if s.budget else "none",
                "" if s.seed is None else str(s.seed),
                str(len(s.records)),
                str(sum(r.feasible for r in s.records)),
            ]
            for s in sources
        ],
    )
    lines += [
        "",
        "## Pareto front",
        "",
        "![Pareto front](pareto.png)",
        "",
        "All feasible trials (colour: timesteps T; marker: activation bits, `mixed` when layers "
        "differ); the front is circled, dashed lines are the budgets.",
        "",
    ]
    lines += _md_table(
        ["trial", "study", "val acc", "test acc", "dense BitOps", "family", "architecture"],
        [
            [
                f"#{r.number}" + (" (knee)" if r is k else ""),
                f"`{r.study}`",
                _acc(r.val),
                _acc(r.test),
                f"{r.bitops:,.0f}",
                r.allocation,
                f"`{r.summary}`",
            ]
            for r in front
        ],
    )
    lines += ["", "## Knee point", ""]
    if k is None:
        lines += ["No knee: the front has fewer than three points or none above its chord."]
    else:
        lines += [
            f"Trial #{k.number} of `{k.study}`: val accuracy {k.val:.3f} at {k.bitops:,.0f} "
            f"dense BitOps (`{k.summary}`).",
        ]
    lines += [
        "",
        "Definition: with log10(dense BitOps) and accuracy each scaled to [0, 1] over the "
        "front, the point farthest above the chord from the cheapest to the most accurate "
        "front point.",
        "",
        "## Iso-budget table: best validation accuracy per allocation family",
        "",
        "Each cell: best validation accuracy among the family's feasible trials within the "
        "budget (with several seeds: their mean, then each seed's best), the trial number, its "
        "test accuracy, and n = trials that competed. Families: binary spikes = abits 1 at "
        "every site and T > 1; single-step = T = 1; multi-bit spikes = T > 1 with some abits "
        "> 1.",
        "",
    ]
    wins = _winners(cells)
    lines += _md_table(
        ["family", *[f"{_fmt_ops(b)} BitOps" for b in budgets]],
        [
            [
                ALLOCATIONS.get(a).label,
                *[
                    _iso_text(c, (c.allocation, c.budget) in wins)
                    for c in cells
                    if c.allocation == a
                ],
            ]
            for a in ORDER
        ],
    )
    if any(len(c.best) > 1 for c in cells):
        lines += ["", "Per seed:", ""]
        rows = []
        for c in cells:
            for r, n in zip(c.best, c.n, strict=True):
                if r is not None:
                    rows.append(
                        [
                            _fmt_ops(c.budget),
                            c.allocation,
                            f"`{r.study}`",
                            f"#{r.number}",
                            _acc(r.val),
                            _acc(r.test),
                            f"{r.bitops:,.0f}",
                            str(n),
                        ]
                    )
        lines += _md_table(
            ["budget", "family", "study", "trial", "val", "test", "BitOps", "n"], rows
        )
    lines += [
        "",
        "## Measured bit density per layer (front points)",
        "",
        "![bit density](density.png)",
        "",
        "Fraction of 1-bits among all bits fed to each layer (over bit planes and steps; "
        "layer 0 is fed the network input). An information-efficient code would sit near 50%.",
        "",
    ]
    short = _short_names(sources)

    def tid(r: Record) -> str:
        return f"#{r.number}" + (f" {short[r.study]}" if len(sources) > 1 else "")

    dens_rows = []
    for r in front:
        if r.densities is None:
            dens_rows.append([tid(r), str(r.timesteps), "", "not measured", ""])
            continue
        hidden = r.densities[1:]
        dens_rows.append(
            [
                tid(r),
                str(r.timesteps),
                "/".join(map(str, r.abits)),
                " / ".join(f"{d:.2f}" for d in r.densities),
                f"{mean(hidden):.2f}" if hidden else "-",
            ]
        )
    lines += _md_table(
        ["trial", "T", "abits", "density per layer input", "mean (hidden)"], dens_rows
    )
    lines += [
        "",
        "## Event-driven BitOps saving (front points)",
        "",
        "Event BitOps count only the 1-bits actually fed to each layer (docs/design.md): the cost "
        "of a bit-serial, spike-driven implementation of the same network.",
        "",
    ]
    ev_rows = []
    for r in front:
        if r.event_bitops is None:
            ev_rows.append([tid(r), f"{r.bitops:,.0f}", "-", "-", "-"])
            continue
        ratio = r.event_bitops / r.bitops if r.bitops else float("nan")
        ev_rows.append(
            [
                tid(r),
                f"{r.bitops:,.0f}",
                f"{r.event_bitops:,.0f}",
                f"{ratio:.2f}",
                f"{1 - ratio:.0%}",
            ]
        )
    lines += _md_table(["trial", "dense BitOps", "event BitOps", "event/dense", "saving"], ev_rows)
    attrs = {
        (src.name, t.number): t.user_attrs
        for src in sources
        for t in src.study.get_trials(deepcopy=False)
    }
    lines += bitplane_section(
        [(tid(r), attrs.get((r.study, r.number), {})) for r in front], _md_table
    )
    lines += [
        "",
        "## Hypervolume history",
        "",
        "![hypervolume](hypervolume.png)",
        "",
        "Hypervolume of the feasible trials so far (`bitnas.search.pareto.front_hypervolume`): "
        "val accuracy x log dense BitOps, reference point (accuracy 0, the budget), the cost "
        "axis running from half the cheapest trial's BitOps (0) to the budget (1); 1.0 would be "
        "perfect accuracy at that lowest cost.",
        "",
    ]
    hv_rows = []
    for s in sources:
        hist = hypervolume_history(s.records, *_hv_frame(s))
        hv_rows.append([f"`{s.name}`", f"{hist[-1][1]:.4f}" if hist else "-", str(len(hist))])
    lines += _md_table(["study", "final HV", "trials"], hv_rows)
    lines += [""]

    _plot_pareto(recs, front, k, budgets, out / "pareto.png")
    _plot_density(front, out / "density.png", short)
    _plot_hv(sources, out / "hypervolume.png")
    md = out / "report.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    return md


def _stored_seed(study: optuna.Study) -> int | None:
    """The study seed recorded with a study bitnas ran (``[study] seed``), else None."""
    seed = (study.user_attrs.get("bitnas_spec") or {}).get("study", {}).get("seed")
    return seed if isinstance(seed, int) else None


def report(target: str | Path, *, out: str | Path, storage: str | None = None) -> Path:
    """Report on a study file (a sweep reports all its cells together) or a stored study name."""
    from bitnas.search.rdb_read import preload
    from bitnas.search.storage import load_study, open_storage
    from bitnas.studies.api import open_result
    from bitnas.studies.loader import load_spec
    from bitnas.studies.sweep import cells

    is_file = str(target).endswith(".toml") or Path(target).is_file()
    spec = load_spec(target) if is_file else None
    if spec is not None and spec.sweep is not None:
        url = storage or spec.study.storage
        store = open_storage(url, create=False)
        sources = []
        for cell, _ in cells(spec):
            try:
                study = load_study(store, cell.name, url)
            except StorageError:
                raise StorageError(
                    f"sweep cell {cell.name!r} is not in {url}: run `bitnas run {target}` first"
                ) from None
            preload(study)  # a database study's trials in one read (rdb_read.py)
            sources.append(
                _source(study, float(cell.budget), allocation=cell.allocation, seed=cell.seed)
            )
        title = f"bitnas report: sweep {spec.study.name!r}"
        budgets: list[float] | None = [float(b) for b in spec.sweep.budgets]
    else:
        result = open_result(spec or str(target), storage=storage)
        budget = result.spec.budget.bitops if result.spec else None
        seed = result.spec.study.seed if result.spec else _stored_seed(result.study)
        sources = [_source(result.study, None if budget is None else float(budget), seed=seed)]
        title = f"bitnas report: study {result.study.study_name!r}"
        budgets = None
    if not any(s.records for s in sources):
        raise SpecError(f"nothing to report: {target} has no trained trial yet")
    return write_report(sources, out, title=title, budgets=budgets)
