"""Study files: every mistake is a SpecError naming the file, section, field and value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bitnas.errors import SpecError
from bitnas.spaces import MLPSpace
from bitnas.studies import StudySpec, load_spec
from tests.conftest import small_study_toml

ROOT = Path(__file__).resolve().parents[2]

GOOD = small_study_toml("t", bitops="100_000", epochs=2)


def write(tmp_path, text):
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


def test_shipped_digits_study_loads():
    spec = load_spec(ROOT / "studies" / "digits.toml")
    assert spec.study.name == "digits" and spec.study.storage == "sqlite:///runs/digits.db"
    assert isinstance(spec.space, MLPSpace) and spec.space.input_shape == (1, 8, 8)
    assert spec.budget.bitops == 150_000 and spec.space.size() == 29_484


def test_defaults_and_storage_from_name(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.study.storage == "sqlite:///runs/t.db"
    assert spec.study.sampler == "tpe" and spec.train.epochs == 2
    assert spec.problem().metric_names == ["val_accuracy", "bitops"]


def test_in_code_spec_equals_file_spec(tmp_path):
    import tomllib

    assert StudySpec.from_dict(tomllib.loads(GOOD)).space == load_spec(write(tmp_path, GOOD)).space


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "wbits = [2, 4]",
            "wbits = [2, 3.5]",
            "`wbits` must be an integer bit width in 1..16 or 32 (full precision), got 3.5 (in [space] of {f})",
        ),
        (
            "width = [16, 32]",
            "widht = [16, 32]",
            "unknown key `widht` in [space]; did you mean `width`?",
        ),
        ("[budget]", "[budgte]", "unknown section [budgte]; did you mean [budget]?"),
        (
            'name = "digits"',
            'name = "digts"',
            "unknown dataset 'digts': valid names are ['cifar10', 'digits', 'fashion_mnist', 'image_folder', 'mnist', 'mnist1d', 'shape', 'synthetic']; did you mean 'digits'? (in [data] of {f})",
        ),
        (
            "trials = 5",
            'trials = 5\nsampler = "tpee"',
            "`sampler` must be one of ['gp', 'known-cost', 'nsga2', 'nsga3', 'qmc', 'random', 'tpe'], got 'tpee' (in [study] of {f})",
        ),
        (
            "bitops = 100_000",
            "bitops = -1",
            "`bitops` must be a positive finite number, got -1 (in [budget] of {f})",
        ),
        ("epochs = 2", "epochs = 0", "`epochs` must be an integer >= 1, got 0 (in [train] of {f})"),
        (
            "timesteps = [1, 2]",
            "timesteps = []",
            "`timesteps` must list at least one choice, got [] (in [space] of {f})",
        ),
        ("depth = [1, 2]", "depth = [3, 1]", "`depth` must be an inclusive range [min, max]"),
        ('name = "t"', 'name = "bad name"', "`name` must be letters, digits"),
        (
            "[space]",
            '[space]\nfamily = "transformer"',
            "`family` must be one of ['cnn1d', 'cnn2d', 'mlp', 'resnet'], got 'transformer'",
        ),
        ("[train]", '[train]\nlr = "fast"', "`lr` must be a number > 0, got 'fast'"),
        (
            "[train]",
            '[train]\nuntil = "plateau"',
            "`until` must be one of ['epochs', 'converged'], got 'plateau' (in [train] of {f})",
        ),
        (
            "[train]",
            "[train]\nlr = [1e-3, 0.0]",
            "`lr` must be a number > 0, got 0.0 (in [train] of {f})",
        ),
        (
            "[data]",
            '[data]\nstandardize = "yes"',
            "`standardize` must be true or false, got 'yes' (in [data] of {f})",
        ),
    ],
)
def test_bad_values_are_named(tmp_path, old, new, expected):
    assert old in GOOD
    f = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(SpecError, match=re.escape(expected.format(f=f))):
        load_spec(f)


def test_an_early_stopper_with_several_learning_rates_is_refused(tmp_path):
    text = GOOD.replace("trials = 5", 'trials = 5\nstopper = "pareto"', 1)
    text = text.replace("[train]", "[train]\nlr = [1e-3, 3e-3]", 1)
    f = write(tmp_path, text)
    with pytest.raises(SpecError) as e:
        load_spec(f)
    assert e.value.field == "lr" and e.value.where == f"[train] of {f}"
    assert "`lr` lists 2 rates [0.001, 0.003] but [study] `stopper` is 'pareto'" in str(e.value)
    ok = load_spec(write(tmp_path, GOOD.replace("[train]", "[train]\nlr = [1e-3, 3e-3]", 1)))
    assert ok.train.lrs == (1e-3, 3e-3) and ok.to_dict()["train"]["lr"] == [1e-3, 3e-3]


def test_a_study_stored_before_the_new_keys_resumes_at_their_old_meaning(tmp_path):
    spec = load_spec(write(tmp_path, GOOD.replace("[data]", "[data]\nstandardize = false", 1)))
    stored = spec.to_dict()
    for section, key in (("data", "standardize"), ("train", "until"), ("train", "patience"),
                         ("train", "min_delta")):  # fmt: skip
        del stored[section][key]
    assert spec.measurement_differences(stored) == []
    standardized = load_spec(write(tmp_path, GOOD))  # the default standardizes: results differ
    assert standardized.measurement_differences(stored) == ["[data] standardize: False -> True"]
    # a supernet study stored before [supernet] `thresholds` existed
    sn = load_spec(write(tmp_path, GOOD + "\n[supernet]\nepochs = 2\n"))
    stored = sn.to_dict()
    del stored["supernet"]["thresholds"], stored["supernet"]["norms"]
    assert sn.measurement_differences(stored) == []
    per_t = load_spec(write(tmp_path, GOOD + '\n[supernet]\nepochs = 2\nthresholds = "bits_t"\n'))
    assert per_t.measurement_differences(stored) == ["[supernet] thresholds: 'bits' -> 'bits_t'"]
    switch = load_spec(write(tmp_path, GOOD + '\n[supernet]\nepochs = 2\nnorms = "bits"\n'))
    assert switch.measurement_differences(stored) == ["[supernet] norms: 'shared' -> 'bits'"]
    with pytest.raises(SpecError, match=r"`norms` must be one of \['shared', 'bits', 'bits_t'\]"):
        load_spec(write(tmp_path, GOOD + '\n[supernet]\nnorms = "width"\n'))


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(SpecError, match="no study file at"):
        load_spec(tmp_path / "nope.toml")
    f = write(tmp_path, "[study\nname=1")
    with pytest.raises(SpecError, match=re.escape(f"{f} is not valid TOML")):
        load_spec(f)


def test_study_name_required(tmp_path):
    f = write(tmp_path, GOOD.replace('name = "t"\n', "", 1))
    with pytest.raises(SpecError, match=re.escape(f"[study] must set `name` (in [study] of {f})")):
        load_spec(f)


def test_command_line_overrides_are_validated(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.replace(trials=9, sampler="random").study.trials == 9
    with pytest.raises(SpecError, match=re.escape("`sampler` must be one of")):
        spec.replace(sampler="bayes")
