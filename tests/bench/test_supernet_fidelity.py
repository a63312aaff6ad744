"""bench/supernet_fidelity.py --rescore as docs/BENCHMARKS.md runs it: the committed result
files' stage-2 and one-run sections are what the code computes from their rows, and the
stage-2 choices behave as non-dominated layers must."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bitnas.evaluators.table import read_table
from bitnas.search.pareto import front_hypervolume, pareto_mask

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow]
FILES = ["digits_mlp.json", "mnist1d_cnn1d_seed1.json", "mnist1d_cnn1d_converged_seed1.json"]


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


@pytest.mark.parametrize("name", FILES)
def test_rescore_reproduces_the_committed_file(tmp_path, name):
    committed = json.loads((ROOT / "docs" / "supernet" / name).read_text())
    stripped = {k: v for k, v in committed.items() if k not in ("stage2", "against_one_run")}
    path = tmp_path / name
    path.write_text(json.dumps(stripped))
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "supernet_fidelity.py"), "--rescore", str(path)],
        check=True, capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    again = json.loads(path.read_text())
    for key in ("stage2", "against_one_run"):
        assert flat(again[key]) == pytest.approx(flat(committed[key]), rel=1e-9)
    layers = again["stage2"]["layers"]
    sizes = [layers[k]["retrained"] for k in ("1", "2", "3")]
    hvs = [layers[k]["hv_ratio"] for k in ("1", "2", "3")]
    assert sizes[0] < sizes[1] < sizes[2]
    assert hvs[0] <= hvs[1] <= hvs[2] <= 1.0 + 1e-12  # a superset never loses hypervolume
    # k = 1 is the supernet's own feasible front, counted independently here
    entries, _ = read_table(ROOT / "bench" / "tables" / f"{committed['table']}.parquet")
    from bitnas.studies.loader import load_spec

    budget = load_spec(ROOT / "bench" / "tables" / f"{committed['table']}.toml").budget.bitops
    feas = [
        (r[1], entries[r[0]].bitops) for r in committed["rows"] if entries[r[0]].bitops <= budget
    ]
    mask = pareto_mask(np.array(feas), ["maximize", "minimize"])
    assert sizes[0] == int(mask.sum())
    # its hypervolume, recomputed from the table: stand-alone accuracy of the supernet's front
    keys = [r[0] for r in committed["rows"] if entries[r[0]].bitops <= budget]
    front = [k for k, m in zip(keys, mask, strict=True) if m]
    cost_min = min(e.bitops for e in entries.values())

    def hv(ks):
        return front_hypervolume(
            [entries[k].val_accuracy for k in ks], [entries[k].bitops for k in ks],
            budget=budget, cost_min=cost_min,
        )  # fmt: skip

    assert layers["1"]["hv_ratio"] == pytest.approx(hv(front) / hv(keys))


def _fidelity_module():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import supernet_fidelity
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return supernet_fidelity


def test_every_committed_table_file_describes_its_table_and_a_drifted_one_is_refused(tmp_path):
    from bitnas.studies.loader import load_spec

    m = _fidelity_module()
    tables = sorted(p.stem for p in (ROOT / "bench" / "tables").glob("*.parquet"))
    assert len(tables) >= 4
    for name in tables:  # the supernet trains on what the table's networks were trained on
        m._same_settings(load_spec(ROOT / "bench" / "tables" / f"{name}.toml"), name)
    # the digits table's file without `standardize = false` (as before session 14): the
    # default standardizes, the table's networks did not
    text = (ROOT / "bench" / "tables" / "digits_mlp.toml").read_text()
    drifted = tmp_path / "digits_mlp.toml"
    drifted.write_text("\n".join(x for x in text.splitlines() if not x.startswith("standardize")))
    with pytest.raises(SystemExit, match=r"\[data\] standardize: False -> True"):
        m._same_settings(load_spec(drifted), "digits_mlp")
