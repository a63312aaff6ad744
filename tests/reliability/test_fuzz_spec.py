"""Fuzzed study files: every malformed or mutated file ends in a bitnas error, never a
traceback from deep inside."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitnas.errors import BitnasError
from bitnas.studies import StudySpec, load_spec

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "studies").glob("*.toml"))
TEXTS = [f.read_text() for f in FILES]
BASES = [tomllib.loads(t) for t in TEXTS]

scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _accepts_or_explains(load) -> None:  # type: ignore[no-untyped-def]
    try:
        spec = load()
    except BitnasError as e:
        assert str(e), "an error must say what is wrong"
        return
    assert isinstance(spec, StudySpec)
    spec.space.size()  # a spec that loads can be sized


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(range(len(BASES))),
    section=st.sampled_from(
        ["study", "data", "space", "budget", "train", "ray", "limits", "extra"]
    ),
    key=st.one_of(
        st.sampled_from(
            [
                "name",
                "trials",
                "sampler",
                "depth",
                "width",
                "wbits",
                "abits",
                "timesteps",
                "bitops",
                "epochs",
                "lr",
                "family",
                "first_wbits",
                "input_shape",
                "cpus_per_trial",
                "stem",
                "storage",
                "trial_seconds",
                "trial_memory_mb",
            ]
        ),
        st.text(max_size=8),
    ),
    value=values,
    drop=st.booleans(),
)
def test_mutated_values_are_accepted_or_explained(base, section, key, value, drop):
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in BASES[base].items()}
    table = data.setdefault(section, {})
    if isinstance(table, dict):
        if drop and key in table:
            del table[key]
        else:
            table[key] = value
    _accepts_or_explains(lambda: StudySpec.from_dict(data, source="fuzz.toml"))


@settings(max_examples=500, deadline=None)
@given(
    base=st.sampled_from(range(len(TEXTS))),
    cut=st.integers(0, 10_000),
    length=st.integers(0, 40),
    insert=st.text(max_size=20),
)
def test_corrupted_files_are_explained(tmp_path_factory, base, cut, length, insert):
    text = TEXTS[base]
    cut %= len(text) + 1
    f = tmp_path_factory.mktemp("fuzz") / "study.toml"
    f.write_text(text[:cut] + insert + text[cut + length :], encoding="utf-8")
    _accepts_or_explains(lambda: load_spec(f))


def test_binary_garbage_and_empty_files(tmp_path):
    for content in (b"", b"\x00\xff\xfe garbage", b"[study]\nname = 'x'\n[space]\nfamily = 7"):
        f = tmp_path / "s.toml"
        f.write_bytes(content)
        _accepts_or_explains(lambda f=f: load_spec(f))
