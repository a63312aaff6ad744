"""The figures of ``bitnas report``, drawn with matplotlib (imported only when one is drawn): the
feasible trials and their Pareto front, the bit density per layer of the front points, and the
hypervolume history of each study.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bitnas.spaces.allocation import ORDER
from bitnas.studies.report_measures import _hv_frame, hypervolume_history
from bitnas.studies.report_records import Record, Source
from bitnas.studies.report_text import _fmt_ops

__all__ = ["INFORMATION_EFFICIENT_DENSITY", "density_figure"]

INFORMATION_EFFICIENT_DENSITY = 0.5


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
