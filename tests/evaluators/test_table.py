from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from bitnas.errors import EvaluationError, SpecError
from bitnas.evaluators import CallableEvaluator, EvalResult
from bitnas.evaluators.table import TABLE_FORMAT, TableEvaluator, build_table, read_table
from bitnas.spaces import bitops
from tests.conftest import small_space, synthetic_accuracy


def _fake(arch, *, seed, report):
    """Deterministic per (architecture, seed); a 3-epoch curve rising to the final value."""
    final = synthetic_accuracy(arch) - 0.01 * seed
    for e, v in enumerate((final - 0.2, final - 0.1, final), start=1):
        if report is not None:
            report(e, {"val_accuracy": v})
    return EvalResult(
        metrics={"val_accuracy": final, "test_accuracy": final - 0.02, "train_loss": 0.1},
        densities=tuple(0.1 * (seed + 1) for _ in arch.layers),
        epochs=3,
    )


def _build(path, space, seeds=(0, 1), workers=1):
    return build_table(
        path,
        space.grid_with_params(),
        CallableEvaluator(_fake),
        seeds=seeds,
        cost=bitops,
        metadata={"bitnas.spec": "{}"},
        workers=workers,
    )


@pytest.fixture
def space():
    return small_space(depth=(1, 1), width=(16, 32), wbits=(2, 8), abits=(1, 4), timesteps=(1, 2))


def test_table_holds_every_architecture_and_seed(tmp_path, space):
    out = tmp_path / "t.parquet"
    assert _build(out, space) == 2 * space.size()
    t = pq.read_table(out)
    assert t.num_rows == 2 * space.size()
    assert t.schema.metadata[b"bitnas.table"] == TABLE_FORMAT.encode()
    entries, meta = read_table(out)
    assert meta["bitnas.table"] == TABLE_FORMAT
    assert set(entries) == {a.key() for a in space.grid()}
    arch = next(iter(space.grid()))
    e = entries[arch.key()]
    # seeds 0 and 1 averaged
    assert e.val_accuracy == pytest.approx(synthetic_accuracy(arch) - 0.005)
    assert e.seeds == 2 and e.val_std == pytest.approx(0.005)
    assert len(e.curve) == 3 and e.curve[-1] == pytest.approx(e.val_accuracy)
    assert e.densities == pytest.approx(tuple(0.15 for _ in arch.layers))
    assert space.from_params(e.params) == arch
    assert e.bitops == bitops(arch)


def test_build_resumes_from_the_journal_and_the_table(tmp_path, space):
    out = tmp_path / "t.parquet"
    n = space.size()
    assert _build(out, space, seeds=(0,)) == n
    assert _build(out, space, seeds=(0,)) == 0  # complete: nothing retrained
    assert _build(out, space, seeds=(0, 1)) == n  # only the new seed
    # a build killed mid-way leaves a journal, possibly with a torn last line
    out2 = tmp_path / "u.parquet"
    journal = tmp_path / "u.parquet.partial.jsonl"
    rows = [r for r in pq.read_table(out).to_pylist() if r["seed"] == 0][:3]
    journal.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"arch_key": "tor')
    assert _build(out2, space, seeds=(0,)) == n - 3
    assert not journal.exists()
    assert pq.read_table(out2).num_rows == n


def test_build_refuses_a_table_of_other_settings(tmp_path, space):
    out = tmp_path / "t.parquet"
    _build(out, space, seeds=(0,))
    with pytest.raises(SpecError, match="different"):
        build_table(
            out,
            space.grid_with_params(),
            CallableEvaluator(_fake),
            seeds=(0,),
            cost=bitops,
            metadata={"bitnas.spec": '{"other": 1}'},
        )


@pytest.mark.slow
def test_build_in_parallel_workers_equals_serial(tmp_path, space):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    _build(a, space, seeds=(0,), workers=1)
    _build(b, space, seeds=(0,), workers=2)
    key = ("arch_key", "seed", "val_accuracy", "curve", "densities")
    rows = [
        sorted(tuple(str(r[k]) for k in key) for r in pq.read_table(p).to_pylist()) for p in (a, b)
    ]
    assert rows[0] == rows[1]


def test_evaluator_looks_up_and_replays_the_curve(tmp_path, space):
    out = tmp_path / "t.parquet"
    _build(out, space)
    ev = TableEvaluator(path=str(out))
    arch = next(iter(space.grid()))
    seen = []
    r = ev.evaluate(arch, seed=5, report=lambda s, m: seen.append((s, m["val_accuracy"])) or False)
    assert [s for s, _ in seen] == [1, 2, 3]
    assert r.metrics["val_accuracy"] == pytest.approx(synthetic_accuracy(arch) - 0.005)
    assert r.metrics["test_accuracy"] == pytest.approx(synthetic_accuracy(arch) - 0.025)
    assert r.epochs == 3 and not r.stopped
    # a stop at epoch 2 returns epoch 2's value and no test accuracy
    r2 = ev.evaluate(arch, seed=0, report=lambda s, m: s == 2)
    assert r2.stopped and r2.epochs == 2
    assert r2.metrics["val_accuracy"] == pytest.approx(seen[1][1])
    assert "test_accuracy" not in r2.metrics


def test_evaluator_errors_name_the_problem(tmp_path, space):
    out = tmp_path / "t.parquet"
    _build(out, space)
    other = small_space(depth=(1, 1), width=(64,)).sample_uniform(__import__("random").Random(0))
    with pytest.raises(EvaluationError, match="not in the table"):
        TableEvaluator(path=str(out)).evaluate(other, seed=0)
    with pytest.raises(SpecError, match="does not exist"):
        TableEvaluator(path=str(tmp_path / "missing.parquet")).prepare()
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(SpecError, match="not a readable Parquet"):
        TableEvaluator(path=str(bad)).prepare()


def test_committed_tables_are_complete():
    """The committed tables hold every architecture of their space, with 2+ seeds each."""
    from pathlib import Path

    from bitnas.studies.loader import load_spec

    root = Path(__file__).resolve().parents[2] / "bench" / "tables"
    for name in ("digits_mlp", "mnist1d_cnn1d"):
        spec = load_spec(root / f"{name}.toml")
        entries, meta = read_table(root / f"{name}.parquet")
        assert set(entries) == {a.key() for a in spec.space.grid()}, name
        assert min(e.seeds for e in entries.values()) >= 2, name
        stored = json.loads(meta["bitnas.spec"])
        assert stored["space"] == spec.to_dict()["space"], name
