from __future__ import annotations

import json
import tomllib

import pyarrow.parquet as pq
import pytest

from bitnas.errors import SpecError
from bitnas.evaluators import TableEvaluator
from bitnas.studies.spec import StudySpec
from bitnas.studies.tables import MAX_TABLE_SIZE, build_from_spec, stored_settings
from tests.studies.test_cli import bitnas


def _study(name: str, db: str, extra: str = "", study_extra: str = "") -> str:
    """16 one-hidden-layer MLPs on digits, trained 1 epoch."""
    return (
        f'[study]\nname = "{name}"\nstorage = "sqlite:///{db}"\ntrials = 5\n{study_extra}'
        "[space]\ndepth = [1, 1]\nwidth = [16]\nwbits = [2, 4]\nabits = [1, 2]\n"
        "timesteps = [1, 2]\n[budget]\nbitops = 60_000\n[train]\nepochs = 1\n" + extra
    )


@pytest.mark.slow
def test_bench_table_then_a_study_on_it(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text(_study("tbl", f"{tmp_path}/x.db"))
    out = tmp_path / "t.parquet"
    first = bitnas(
        "bench-table", f, "--out", out, "--seeds", "2", "--workers", "2", "--no-progress"
    )
    assert "16 architectures x seeds [0, 1]; 32 trainings run now" in first.stdout
    assert pq.read_table(out).num_rows == 32
    again = bitnas("bench-table", f, "--out", out, "--seeds", "2", "--no-progress")
    assert "0 trainings run now" in again.stdout
    # the same space looked up instead of trained, searched by the known-cost sampler
    g = tmp_path / "s.toml"
    g.write_text(
        _study(
            "on-table", f"{tmp_path}/s.db", f'[table]\npath = "{out}"\n', 'sampler = "known-cost"\n'
        )
    )
    run = bitnas("run", g, "--no-progress")
    assert "added 5 finished trials" in run.stdout
    assert "rejected" not in run.stdout.split("; now")[0]


def test_a_table_study_uses_the_table_evaluator_and_cannot_build_one(tmp_path):
    d = {
        "study": {"name": "x"},
        "space": {"depth": [1, 1], "width": [16], "wbits": [2], "abits": [1], "timesteps": [1]},
        "table": {"path": str(tmp_path / "t.parquet")},
    }
    spec = StudySpec.from_dict(d, source="x.toml")
    assert isinstance(spec.evaluator(), TableEvaluator)
    assert spec.to_dict()["table"]["path"].endswith("t.parquet")
    with pytest.raises(SpecError, match=r"\[table\] section looks results up"):
        build_from_spec(spec, tmp_path / "o.parquet", seeds=[0])
    # a spec without [table] records none, so studies stored before [table] existed resume
    plain = StudySpec.from_dict({k: v for k, v in d.items() if k != "table"})
    assert "table" not in plain.to_dict()
    assert plain.measurement_differences(plain.to_dict()) == []
    with pytest.raises(SpecError, match=r"unknown key `paht` in \[table\]; did you mean `path`"):
        StudySpec.from_dict({**d, "table": {"paht": "x"}}, source="x.toml")


def test_a_space_too_large_for_a_table_is_refused(tmp_path):
    d = {
        "study": {"name": "big"},
        "space": {"depth": [1, 6], "width": [16, 32, 64, 128], "width_per_layer": True},
    }
    spec = StudySpec.from_dict(d)
    assert spec.space.size() > MAX_TABLE_SIZE
    with pytest.raises(SpecError, match="limited to"):
        build_from_spec(spec, tmp_path / "o.parquet", seeds=[0])


@pytest.mark.slow
def test_a_table_built_before_a_key_existed_resumes_where_the_key_keeps_its_old_meaning(tmp_path):
    raw = _study("tbl", f"{tmp_path}/x.db").replace(
        "[space]", "[data]\nstandardize = false\n[space]"
    )
    spec = StudySpec.from_dict(tomllib.loads(raw), source="t.toml")
    out = tmp_path / "t.parquet"
    assert build_from_spec(spec, out, seeds=[0], progress=False) == 16
    # as a table written before `standardize` existed stores it: without the key
    table = pq.read_table(out)
    meta = dict(table.schema.metadata)
    settings = json.loads(meta[b"bitnas.spec"])
    del settings["data"]["standardize"]
    meta[b"bitnas.spec"] = json.dumps(settings, sort_keys=True).encode()
    pq.write_table(table.replace_schema_metadata(meta), out)
    assert build_from_spec(spec, out, seeds=[0], progress=False) == 0  # nothing retrained
    assert json.loads(stored_settings(out)) == settings  # and the old record kept
    standardized = StudySpec.from_dict(tomllib.loads(_study("tbl", "x.db")), source="t.toml")
    with pytest.raises(
        SpecError, match=r"built from other settings \(\[data\] standardize: False -> True\)"
    ):
        build_from_spec(standardized, out, seeds=[0], progress=False)
