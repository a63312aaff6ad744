"""A study's artifact store and the study-level artifacts a run refreshes (the Pareto plot).

Per-trial artifacts (the architecture JSON) are written by the trial protocol
(``bitnas.search.trials.propose``); this module decides where the store is and draws the
study's Pareto plot after a run.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from bitnas.search.artifacts import default_artifact_dir, open_artifact_store, put_study_file
from bitnas.search.export import front_trials
from bitnas.search.records import is_rejected

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

__all__ = ["PARETO_FILENAME", "artifact_dir", "pareto_png", "refresh_study_artifacts", "store_for"]

PARETO_FILENAME = "pareto.png"


def artifact_dir(storage_url: str, configured: str = "") -> Path | None:
    """The artifact folder of a study: ``configured`` ([study] artifacts) if set, else the
    default beside ``storage_url`` (None for an in-memory storage)."""
    return Path(configured) if configured else default_artifact_dir(storage_url)


def store_for(storage_url: str, configured: str = "") -> ArtifactStore | None:
    """The artifact store of a study (folder created), or None where it has none."""
    path = artifact_dir(storage_url, configured)
    return open_artifact_store(path) if path is not None else None


def pareto_png(study: optuna.Study, *, budget: float | None = None) -> bytes:
    """A PNG of accuracy against BitOps (log scale): every trained trial within budget in grey,
    the feasible Pareto front as a staircase, the budget as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt

    names = study.metric_names or ["accuracy", "bitops"]
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values is not None and not is_rejected(t)
    ]
    front = front_trials(study)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    try:
        if done:
            ax.scatter(
                [t.values[1] for t in done],
                [t.values[0] for t in done],
                s=14,
                color="0.65",
                label=f"trials ({len(done)})",
            )
        if front:
            xs, ys = [t.values[1] for t in front], [t.values[0] for t in front]
            ax.step(xs, ys, where="post", color="tab:blue", lw=1.2)
            ax.scatter(xs, ys, s=28, color="tab:blue", zorder=3, label=f"Pareto front ({len(xs)})")
            for t in front:
                ax.annotate(
                    f"#{t.number}",
                    (t.values[1], t.values[0]),
                    fontsize=7,
                    xytext=(3, -9),
                    textcoords="offset points",
                )
        if budget is not None:
            ax.axvline(budget, color="tab:red", ls="--", lw=1, label=f"budget {budget:,.0f}")
        ax.set_xscale("log")
        ax.set_xlabel(f"{names[1]} (dense BitOps per sample, log scale)")
        ax.set_ylabel(names[0])
        ax.set_title(f"study {study.study_name!r}: {names[0]} vs {names[1]}")
        ax.grid(True, which="both", alpha=0.3)
        if done or budget is not None:
            ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()


def refresh_study_artifacts(
    study: optuna.Study, store: ArtifactStore, *, budget: float | None = None
) -> str:
    """Upload (or replace) the study's ``pareto.png``; returns its artifact id."""
    return put_study_file(store, study, PARETO_FILENAME, pareto_png(study, budget=budget))
