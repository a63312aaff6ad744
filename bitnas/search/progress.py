"""A progress bar over finished trials (tqdm, which Optuna already depends on)."""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

__all__ = ["Progress"]


class Progress:
    def __init__(self, total: int, *, enabled: bool = True) -> None:
        self.bar = None
        self.best: float | None = None
        self.failed = 0
        if enabled and total > 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="trial", dynamic_ncols=True)

    def update(self, trial: FrozenTrial) -> None:
        """Show ``trial``; only finished (not failed) trials advance the bar."""
        if trial.state == TrialState.COMPLETE and trial.values:
            self.best = trial.values[0] if self.best is None else max(self.best, trial.values[0])
        elif trial.state == TrialState.FAIL:
            self.failed += 1
        if self.bar is not None:
            post = {} if self.best is None else {"best": f"{self.best:.4f}"}
            if self.failed:
                post["failed"] = str(self.failed)
            self.bar.set_postfix(post, refresh=trial.state == TrialState.FAIL)
            if trial.state != TrialState.FAIL:
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
