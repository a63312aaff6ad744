"""Datasets: shipped, generated locally, or read from local folders in torchvision's layouts
(tiny fakes written here: nothing is downloaded)."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from bitnas.errors import SpecError
from bitnas.evaluators import DataSpec, dataset_info
from bitnas.evaluators.datasets import load_splits


def check(s, shape, classes):
    for x, y in ((s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape[1:] == shape and len(x) == len(y)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y)) <= set(range(classes))


def test_mnist1d_is_regenerated_with_its_official_test_split():
    s = load_splits(DataSpec(name="mnist1d"))
    check(s, (1, 40), 10)
    assert len(s.x_test) == 1000 and len(s.x_train) + len(s.x_val) == 4000
    again = load_splits(DataSpec(name="mnist1d", seed=0, val_fraction=0.2000001))
    assert np.array_equal(s.x_test, again.x_test)  # the generator is deterministic
    state = np.random.get_state()[1][:5].copy()
    load_splits(DataSpec(name="mnist1d", seed=3))
    assert np.array_equal(np.random.get_state()[1][:5], state)  # global RNG left alone


@pytest.mark.parametrize("name", ["mnist1d", "digits", "synthetic"])
def test_standardization_uses_the_training_split_only(name):
    s = load_splits(DataSpec(name=name))
    mean, sd = s.input_norm
    assert mean == pytest.approx(float(s.x_train.mean(dtype=np.float64)), rel=1e-9)
    assert sd == pytest.approx(float(s.x_train.std(dtype=np.float64)), rel=1e-9)
    # computed over all splits it would differ: validation and test samples are not used
    every = np.concatenate([s.x_train, s.x_val, s.x_test])
    assert (mean, sd) != (float(every.mean(dtype=np.float64)), float(every.std(dtype=np.float64)))
    standardized = (s.x_val - mean) / sd
    assert abs(float(standardized.mean())) < 0.1 and 0.9 < float(standardized.std()) < 1.1
    rec = s.norm_record()
    assert rec == {"standardized": True, "mean": mean, "sd": sd, "from": "training split"}
    off = load_splits(DataSpec(name=name, standardize=False))
    assert off.input_norm is None and off.norm_record() == {"standardized": False}
    with pytest.raises(SpecError, match=r"`standardize` must be true or false, got 'yes'"):
        DataSpec(name=name, standardize="yes")


def test_synthetic_and_digits():
    check(load_splits(DataSpec(name="synthetic", samples=500)), (20,), 4)
    d = load_splits(DataSpec(name="digits"))
    check(d, (1, 8, 8), 10)
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797


def test_splits_are_seeded():
    a = load_splits(DataSpec(seed=1))
    load_splits.cache_clear()  # a fresh split, not the cached object
    b = load_splits(DataSpec(seed=1))
    assert a is not b and np.array_equal(a.x_val, b.x_val) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_val, load_splits(DataSpec(seed=2)).y_val)


def test_cifar10_from_a_local_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", 20) for i in range(1, 6)), ("test_batch", 20)]:
        batch = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": [i % 10 for i in range(n)],
        }
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f)
    spec = DataSpec(name="cifar10", root=str(tmp_path), val_fraction=0.2)
    assert dataset_info(spec).input_shape == (3, 32, 32)
    s = load_splits(spec)
    check(s, (3, 32, 32), 10)
    assert len(s.x_test) == 20 and len(s.x_train) == 80


def _idx(path, arr):
    header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def test_mnist_idx_files_from_a_local_folder(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 50), ("t10k", 20)):
        _idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    s = load_splits(DataSpec(name="fashion_mnist", root=str(tmp_path)))
    check(s, (1, 28, 28), 10)
    assert len(s.x_test) == 20


def test_image_folder(tmp_path):
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(6):
            Image.fromarray(np.full((5, 4, 3), 40 * i, dtype=np.uint8)).save(
                tmp_path / c / f"{i}.png"
            )
    spec = DataSpec(name="image_folder", root=str(tmp_path))
    info = dataset_info(spec)
    assert info.input_shape == (3, 5, 4) and info.num_classes == 2
    check(load_splits(spec), (3, 5, 4), 2)


def test_missing_local_data_is_a_clear_error(tmp_path):
    with pytest.raises(SpecError, match="set `root` in \\[data\\]"):
        load_splits(DataSpec(name="cifar10"))
    with pytest.raises(SpecError, match=r"missing .*data_batch_1"):
        (tmp_path / "cifar-10-batches-py").mkdir()
        load_splits(DataSpec(name="cifar10", root=str(tmp_path)))
    with pytest.raises(SpecError, match="is not a folder"):
        load_splits(DataSpec(name="mnist", root=str(tmp_path / "nope")))
