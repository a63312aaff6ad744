"""Plain-text views of a study for the terminal."""

from __future__ import annotations

import optuna

from bitnas.search.export import front_trials

__all__ = ["PHRASES", "format_counts", "format_front"]


#: What follows each count after "N finished trials (...)", in the order printed. ``retries``,
#: ``closed`` and a run's ``retried`` appear in what one run added (``StudyView.added``).
PHRASES: dict[str, str] = {
    "retries": "of them retrying a failed trial",
    "failed": "failed (a re-run retries them)",
    "retried": "failed and since retried to the end",
    "closed": "closed (left running by a dead earlier run)",
    "duplicate": "repeated proposals answered from earlier trials",
    "rejected": "over budget, not trained",
    "spare": "spare, not trained (other runs' trials made the target)",
    "running": "running",
}


def format_counts(c: dict[str, int]) -> str:
    """``12 finished trials (11 complete, 1 pruned), 2 failed (a re-run retries them), ...``:
    every ``PHRASES`` count above zero, in that order."""
    parts = [f"{c.get('finished', 0)} finished trials"]
    detail = [f"{c[k]} {k}" for k in ("complete", "pruned") if c.get(k)]
    if detail:
        parts[0] += f" ({', '.join(detail)})"
    parts += [f"{c[k]} {phrase}" for k, phrase in PHRASES.items() if c.get(k, 0) > 0]
    return ", ".join(parts)


def format_front(study: optuna.Study, *, budget: float | None = None) -> str:
    """The feasible Pareto front as an aligned table, cheapest first."""
    front = front_trials(study)
    names = study.metric_names or ["value_0", "value_1"]
    title = "feasible Pareto front" + (f" (budget {budget:,.0f} BitOps)" if budget else "")
    if not front:
        return f"{title}: empty (no feasible COMPLETE trial yet)"
    head = ["trial", names[0], "test_acc", names[1], "event_bitops", "T", "architecture"]
    rows = []
    for t in front:
        ua = t.user_attrs
        ev = ua.get("event_bitops")
        ta = ua.get("test_accuracy")
        rows.append(
            [
                str(t.number),
                f"{t.values[0]:.4f}",
                "" if ta is None else f"{ta:.4f}",
                f"{t.values[1]:,.0f}",
                "" if ev is None else f"{ev:,.0f}",
                str(ua.get("timesteps", "")),
                str(ua.get("summary", "")),
            ]
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    right = {0, 1, 2, 3, 4, 5}

    def line(r: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    out = [f"{title}: {len(front)} points", line(head), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)
