"""How well the known-cost sampler's model knows what it has not tried, on the committed tables.

For each seed, a known-cost study on a table (``bench/tables/<name>``, as in
``bench/search_quality.py``) is run to 25, 50 and 100 trained trials; at each point the model
of its last proposal predicts every feasible architecture of the table the study has not
trained, and is scored against the table: the share of true (seed-mean validation)
accuracies inside its 2-sigma interval (the issue's calibration goal: about 95%, at least 85%),
the mean half-width of that interval, and the Spearman correlation of its median with the
truth.

    python bench/model_coverage.py --table digits_mlp --seeds 10 \
        --out docs/search_quality/coverage_digits_mlp.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_quality import _table_evaluator, table_arguments, table_setup

from bitnas.search import Problem, make_sampler, optimize
from bitnas.search.trials import ATTR_KEY
from bitnas.studies.loader import load_spec

CHECKPOINTS = (25, 50, 100)


def run(spec_path: Path, table: Path, seed: int) -> dict[str, dict[str, float]]:
    import optuna
    from scipy.stats import spearmanr

    spec = load_spec(spec_path)
    ev = _table_evaluator(table)
    problem = Problem(space=spec.space, evaluator=ev, budget=spec.budget, seed=seed)
    sampler = make_sampler("known-cost", seed, problem)
    study = optuna.create_study(directions=problem.directions, sampler=sampler)
    entries = ev.entries()
    grid = spec.space.grid_with_params()
    feasible = {a.key(): p for p, a in grid if problem.budget.allows(problem.cost(a))}
    out: dict[str, dict[str, float]] = {}
    done = 0
    for n in CHECKPOINTS:
        optimize(study, problem, n - done, progress=False)
        done = n
        tried = {t.user_attrs.get(ATTR_KEY) for t in study.get_trials(deepcopy=False)}
        keys = [k for k in feasible if k not in tried]
        med, lo, hi = sampler.predict([feasible[k] for k in keys])  # type: ignore[attr-defined]
        truth = np.array([entries[k].val_accuracy for k in keys])
        out[str(n)] = {
            "coverage_2sigma": float(np.mean((truth >= lo) & (truth <= hi))),
            "halfwidth": float(np.mean((hi - lo) / 2)),
            "spearman": float(spearmanr(med, truth).statistic),
            "untried": len(keys),
        }
    return out


def main() -> int:
    ap = table_arguments(__doc__.split("\n\n")[0], ["known-cost"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    spec_path, table, facts = table_setup(args.table, max(CHECKPOINTS))
    runs = [run(spec_path, table, s) for s in range(args.seeds)]
    lines = ["| trials | 2-sigma coverage, mean [min-max] | mean half-width | Spearman |",
             "|---:|---:|---:|---:|"]
    summary: dict[str, Any] = {}
    for n in map(str, CHECKPOINTS):
        cov = [r[n]["coverage_2sigma"] for r in runs]
        hw = statistics.mean(r[n]["halfwidth"] for r in runs)
        sp = statistics.mean(r[n]["spearman"] for r in runs)
        summary[n] = {"coverage": statistics.mean(cov), "min": min(cov), "halfwidth": hw,
                      "spearman": sp}
        lines.append(f"| {n} | {statistics.mean(cov):.3f} [{min(cov):.3f}-{max(cov):.3f}] "
                     f"| {hw:.4f} | {sp:.3f} |")
    print("\n".join(lines))
    if args.out:
        args.out.write_text(json.dumps({**facts, "summary": summary, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
