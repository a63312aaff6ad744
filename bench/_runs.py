"""The JSON-lines run caches the search benchmarks resume from: one finished run per line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_runs(
    path: Path | None, trials: int, version: int
) -> dict[tuple[str, int], dict[str, Any]]:
    """(sampler, seed) -> run, for the runs in ``path`` made with ``trials`` and ``version``."""
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if path is not None and path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if (r["trials"], r["version"]) == (trials, version):
                done[(r["sampler"], r["seed"])] = r
    return done


def append_run(path: Path | None, run: dict[str, Any]) -> None:
    """Keep a finished run at once (a long benchmark can be stopped and resumed)."""
    if path is not None:
        with path.open("a") as f:
            f.write(json.dumps(run) + "\n")
