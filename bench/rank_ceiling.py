"""How well can an evaluator rank an exhaustive table at all? The reference of the supernet's
rank fidelity (bench/supernet_fidelity.py) is the table's 2-seed mean validation accuracy,
itself noisy; this measures what two other evaluators score against that same reference:

- an independent stand-alone run (a third training seed, ``--third``: a table of the same
  architectures and settings holding another seed, built by ``bitnas bench-table --seeds 3``
  on a copy of the table) — measured, no model needed;
- the same two, estimated from the table's own two seeds under a homoscedastic Gaussian noise
  model (accuracy = architecture's mean + independent noise per run): with R the Pearson
  correlation of two runs, an independent run correlates with the 2-seed mean at
  R / sqrt((1 + R) / 2), a noise-free evaluator (the architectures' true means) at
  sqrt(2R / (1 + R)); Pearson r and Kendall tau are converted by Greiner's relation
  tau = (2 / pi) asin(r), exact for bivariate normal data. Accuracies are neither normal nor
  equally noisy per architecture, so the estimate is checked against the measured third run
  wherever one exists.

An evaluator below the independent-run value ranks worse than re-training each architecture
once more; one above it ranks better than a second training run. The script writes no table:
`--third` is read only.

    python bench/rank_ceiling.py --table digits_mlp \
        --third docs/supernet/digits_mlp_3seeds.parquet \
        --boot 200 --out docs/supernet/ceiling_digits_mlp.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from supernet_fidelity import TABLES, ranks

from bitnas.studies.loader import load_spec
from bitnas.studies.tables import TABLE_SECTIONS, stored_settings


def runs(path: Path) -> dict[int, dict[str, tuple[float, float]]]:
    """{seed: {architecture key: (validation accuracy, BitOps)}} of a table file."""
    out: dict[int, dict[str, tuple[float, float]]] = {}
    cols = ["arch_key", "seed", "val_accuracy", "bitops"]
    for r in pq.read_table(path, columns=cols).to_pylist():
        out.setdefault(r["seed"], {})[r["arch_key"]] = (r["val_accuracy"], r["bitops"])
    return out


def estimated(tau_runs: float) -> dict[str, float]:
    """Under the Gaussian noise model: from one run's tau against another, the tau of an
    independent run and of a noise-free evaluator against the mean of two runs."""
    if not tau_runs > 0:
        raise SystemExit(f"two runs agree at tau {tau_runs}: the noise model needs tau > 0")
    r = math.sin(math.pi / 2 * tau_runs)
    to_tau = lambda c: 2 / math.pi * math.asin(min(1.0, c))  # noqa: E731
    return {
        "pearson_run_vs_run": r,
        "independent_run_vs_mean": to_tau(r / math.sqrt((1 + r) / 2)),
        "noise_free_vs_mean": to_tau(math.sqrt(2 * r / (1 + r))),
    }


def ceiling(table: str, third: Path | None, boot: int) -> dict[str, object]:
    spec = load_spec(TABLES / f"{table}.toml")
    own = runs(TABLES / f"{table}.parquet")
    if len(own) < 2:
        raise SystemExit(f"bench/tables/{table}.parquet holds {len(own)} seed(s); 2 are needed")
    s0, s1 = sorted(own)[:2]
    extra = None
    if third is not None:
        for path in (TABLES / f"{table}.parquet", third):  # both: what the study file says
            stored = stored_settings(path)
            if stored is None or spec.measurement_differences(
                json.loads(stored), sections=TABLE_SECTIONS
            ):
                raise SystemExit(f"{path} was not built with bench/tables/{table}.toml's settings")
        extra = runs(third)
    keys = sorted(own[s0].keys() & own[s1].keys())
    a = np.array([own[s0][k][0] for k in keys])
    b = np.array([own[s1][k][0] for k in keys])
    mean = (a + b) / 2
    feas = np.array([spec.budget.allows(own[s0][k][1]) for k in keys])
    rng = np.random.default_rng(0)
    out: dict[str, object] = {"table": table, "seeds": [s0, s1], "n": len(keys)}
    for name, mask in (("overall", np.ones(len(keys), bool)), ("feasible", feas)):
        tau01 = float(stats.kendalltau(a[mask], b[mask]).statistic)
        part: dict[str, object] = {
            "n": int(mask.sum()),
            "run_vs_run": ranks(a[mask], b[mask], rng, boot),
            "estimate": estimated(tau01),
        }
        if extra is not None:
            seeds = [s for s in sorted(extra) if s not in (s0, s1)]
            if not seeds:
                raise SystemExit(f"{third} holds no seed other than {s0} and {s1}")
            s2 = seeds[0]
            missing = [k for k in keys if k not in extra[s2]]
            if missing:
                raise SystemExit(f"{third} lacks seed {s2} of {len(missing)} architectures")
            c = np.array([extra[s2][k][0] for k in keys])
            part["third_seed"] = s2
            part["independent_run_vs_mean"] = ranks(c[mask], mean[mask], rng, boot)
            part["third_vs_each_run"] = [
                float(stats.kendalltau(c[mask], x[mask]).statistic) for x in (a, b)
            ]
        out[name] = part
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", required=True, help="bench/tables/<NAME>.{toml,parquet}")
    ap.add_argument("--third", type=Path, help="a table holding a third seed of the same runs")
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    res = ceiling(a.table, a.third, a.boot)
    text = json.dumps(res, indent=1)
    if a.out:
        Path(a.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
