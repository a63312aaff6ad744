"""bench/spikes_vs_bits.py: learning rates are chosen on the pilot seed's validation accuracy,
and each matched pair is reported with its 95% CI and a paired t-test (from a fake journal)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

from scipy import stats

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("svb", ROOT / "bench" / "spikes_vs_bits.py")
assert _spec is not None and _spec.loader is not None
svb = importlib.util.module_from_spec(_spec)
sys.modules["svb"] = svb  # dataclasses look their module up
_spec.loader.exec_module(svb)

SIZE = svb.Size(
    structures=((16, (1, 1)),), seeds=(0, 1, 2), lrs=(3e-3, 1e-2), pairs=(0,),
    fidelities=("short",),
)  # fmt: skip


def _row(stage, t, a, lr, seed, val, test):
    key = svb._key(stage, "short", 16, (1, 1), t, a, lr, seed)
    return {"key": key, "fidelity": "short", "width": 16, "depths": [1, 1], "T": t, "abits": a,
            "lr": lr, "seed": seed, "val": val, "test": test, "epochs": 10, "converged": False,
            "best_epoch": 10, "bitops": 1000, "seconds": 1.0}  # fmt: skip


def test_pilot_choice_and_paired_report(tmp_path):
    rows = [
        # pilot: binary spikes do best at 1e-2, the single step at 3e-3 (on validation)
        _row("pilot", 2, 1, 3e-3, svb.PILOT_SEED, 0.50, 0.99),
        _row("pilot", 2, 1, 1e-2, svb.PILOT_SEED, 0.60, 0.10),
        _row("pilot", 1, 2, 3e-3, svb.PILOT_SEED, 0.80, 0.10),
        _row("pilot", 1, 2, 1e-2, svb.PILOT_SEED, 0.70, 0.99),
    ]
    spk, one = [0.60, 0.64, 0.70], [0.70, 0.71, 0.72]
    for seed in range(3):
        rows.append(_row("main", 2, 1, 1e-2, seed, 0.0, spk[seed]))
        rows.append(_row("main", 1, 2, 3e-3, seed, 0.0, one[seed]))
    journal = tmp_path / "j.jsonl"
    journal.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = svb.read_journal(journal)
    assert svb.chosen_lrs(SIZE, "short", done) == {
        "binary_spikes": 1e-2,
        "multibit_single_step": 3e-3,
    }
    # the main jobs use those rates, and a rerun has nothing left to train
    jobs = list(svb._jobs_main(SIZE, "short", svb.chosen_lrs(SIZE, "short", done)))
    assert {k for k, _ in jobs} <= set(done) and len(jobs) == 6
    text = svb.report(SIZE, journal, "test")
    d = [100 * (s - q) for s, q in zip(spk, one, strict=True)]
    mean = sum(d) / 3
    half = stats.t.ppf(0.975, 2) * stats.tstd(d) / math.sqrt(3)
    p = stats.ttest_rel(spk, one).pvalue
    assert f"| {mean:+.1f} ± {half:.1f} | {p:.3g} | 0/3 |" in text
    assert "binary_spikes 0.01, multibit_single_step 0.003" in text


def test_training_length_effect_is_paired_by_seed(tmp_path):
    size = svb.Size(
        structures=((16, (1, 1)),), seeds=(0, 1, 2), lrs=(1e-2,), pairs=(0,),
        fidelities=("short", "converged"),
    )  # fmt: skip
    rows = []
    short_gap, long_gap = [-0.10, -0.12, -0.14], [-0.05, -0.04, -0.09]
    for fid, gaps in (("short", short_gap), ("converged", long_gap)):
        for seed, g in enumerate(gaps):
            for t, a, acc in ((2, 1, 0.8 + g), (1, 2, 0.8)):
                r = _row("main", t, a, 1e-2, seed, 0.0, acc)
                r["fidelity"] = fid
                r["key"] = svb._key("main", fid, 16, (1, 1), t, a, 1e-2, seed)
                rows.append(r)
    journal = tmp_path / "j.jsonl"
    journal.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = "\n".join(svb._length_effect(size, svb.read_journal(journal), "test"))
    change = [100 * (b - a) for a, b in zip(short_gap, long_gap, strict=True)]
    half = stats.t.ppf(0.975, 2) * stats.tstd(change) / math.sqrt(3)
    p = stats.ttest_rel([100 * g for g in long_gap], [100 * g for g in short_gap]).pvalue
    assert f"| 3 | -12.0 | -6.0 | {sum(change) / 3:+.1f} ± {half:.1f} | {p:.3g} |" in text
