"""``bitnas report``: a self-contained Markdown report with PNG figures for a study or a sweep.

The definitions it uses (they are also written into every report) stand with the code that
computes them: trials and allocation families in ``bitnas.studies.report_records``; front,
knee and hypervolume in ``bitnas.studies.report_measures``. The figures are drawn in
``bitnas.studies.report_figures``, the Markdown pieces written in ``bitnas.studies.report_text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from statistics import mean

import optuna

from bitnas.errors import ExportError, SpecError, StorageError
from bitnas.spaces.allocation import ALLOCATIONS, ORDER
from bitnas.studies.bitplanes import bitplane_section
from bitnas.studies.report_figures import (
    INFORMATION_EFFICIENT_DENSITY,
    _abits_mark,
    _plot_density,
    _plot_hv,
    _plot_pareto,
    density_figure,
)
from bitnas.studies.report_measures import (
    IsoCell,
    _hv_frame,
    hypervolume_history,
    iso_budget,
    knee,
    pareto_front,
)
from bitnas.studies.report_records import Record, Source, _record, _source, records
from bitnas.studies.report_text import (
    _acc,
    _fmt_ops,
    _iso_text,
    _md_table,
    _short_names,
    _verdicts,
    _winners,
)

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
    # moved to report_records, report_measures, report_text and report_figures, still
    # importable here
    "INFORMATION_EFFICIENT_DENSITY",
    "IsoCell",
    "_abits_mark",
    "_acc",
    "_fmt_ops",
    "_hv_frame",
    "_iso_text",
    "_md_table",
    "_plot_density",
    "_plot_hv",
    "_plot_pareto",
    "_record",
    "_short_names",
    "_source",
    "_verdicts",
    "_winners",
    "density_figure",
]


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
