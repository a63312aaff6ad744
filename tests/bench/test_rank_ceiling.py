"""bench/rank_ceiling.py as docs/BENCHMARKS.md runs it: the committed ceiling files are what
the script computes from the tables, its Gaussian-noise estimate is right where its model
holds, and a third table that is not a third run of the same table is refused."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import rank_ceiling  # noqa: E402


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            out.update(flat(dict(enumerate(v)), f"{prefix}{k}."))
        else:
            out[prefix + k if isinstance(k, str) else f"{prefix}{k}"] = v
    return out


@pytest.mark.slow
@pytest.mark.parametrize("table", ["digits_mlp", "mnist1d_cnn1d"])
def test_the_committed_ceiling_files_are_reproduced(tmp_path, table):
    third = ROOT / "docs" / "supernet" / f"{table}_3seeds.parquet"
    out = tmp_path / "ceiling.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rank_ceiling.py"), "--table", table,
         "--third", str(third), "--boot", "200", "--out", str(out)],
        check=True, capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    again = json.loads(out.read_text())
    committed = json.loads((ROOT / "docs" / "supernet" / f"ceiling_{table}.json").read_text())
    got, want = flat(again), flat(committed)
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == (v if isinstance(v, str) else pytest.approx(v, rel=1e-9)), k
    for part in ("overall", "feasible"):
        p = again[part]
        # the third seed against the mean of two is measured, and the two-run tau is below it
        assert p["third_seed"] == 2
        assert p["independent_run_vs_mean"]["kendall_tau"] > p["run_vs_run"]["kendall_tau"]
        assert p["estimate"]["noise_free_vs_mean"] > p["estimate"]["independent_run_vs_mean"]


def test_the_estimate_matches_simulated_gaussian_runs():
    # the model exactly: true means + independent homoscedastic noise per run
    rng = np.random.default_rng(0)
    n = 20_000
    true = rng.normal(size=n)
    a, b, c = (true + 0.6 * rng.normal(size=n) for _ in range(3))
    tau_ab = float(stats.kendalltau(a, b).statistic)
    est = rank_ceiling.estimated(tau_ab)
    mean = (a + b) / 2
    assert est["pearson_run_vs_run"] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=0.01)
    independent = float(stats.kendalltau(c, mean).statistic)
    noise_free = float(stats.kendalltau(true, mean).statistic)
    assert est["independent_run_vs_mean"] == pytest.approx(independent, abs=0.01)
    assert est["noise_free_vs_mean"] == pytest.approx(noise_free, abs=0.01)
    # and it is discriminating: the values differ by much more than the tolerance
    assert noise_free - independent > 0.05 and independent - tau_ab > 0.03


def test_perfect_agreement_and_no_agreement():
    assert rank_ceiling.estimated(1.0)["noise_free_vs_mean"] == pytest.approx(1.0)
    assert rank_ceiling.estimated(1.0)["independent_run_vs_mean"] == pytest.approx(1.0)
    with pytest.raises(SystemExit, match="needs tau > 0"):
        rank_ceiling.estimated(0.0)
    with pytest.raises(SystemExit, match="needs tau > 0"):
        rank_ceiling.estimated(math.nan)


def test_a_third_table_without_another_seed_is_refused():
    table = ROOT / "bench" / "tables" / "digits_mlp.parquet"
    with pytest.raises(SystemExit, match="holds no seed other than 0 and 1"):
        rank_ceiling.ceiling("digits_mlp", table, boot=2)


def test_a_third_table_of_other_settings_is_refused(tmp_path):
    src = ROOT / "docs" / "supernet" / "mnist1d_cnn1d_3seeds.parquet"
    t = pq.read_table(src)
    meta = dict(t.schema.metadata)
    spec = json.loads(meta[b"bitnas.spec"])
    spec["train"]["epochs"] = 3  # another training length: not a third run of the same table
    meta[b"bitnas.spec"] = json.dumps(spec, sort_keys=True).encode()
    other = tmp_path / "other.parquet"
    pq.write_table(t.replace_schema_metadata(meta), other)
    with pytest.raises(
        SystemExit, match=re.escape("was not built with bench/tables/mnist1d_cnn1d.toml")
    ):
        rank_ceiling.ceiling("mnist1d_cnn1d", other, boot=2)
    # the digits table's third seed is a table of another study altogether
    digits = ROOT / "docs" / "supernet" / "digits_mlp_3seeds.parquet"
    with pytest.raises(SystemExit, match="was not built with"):
        rank_ceiling.ceiling("mnist1d_cnn1d", digits, boot=2)
