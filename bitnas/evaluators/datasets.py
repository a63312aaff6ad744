"""Datasets, registered by name; every one ships with a package or is generated locally.

Each dataset gives numpy arrays with inputs scaled to [0, 1] (the encoders' contract) and a
seeded, stratified train/val/test split. ``info`` is known without loading the data, so a
search space can be sized before anything is read.
"""

from __future__ import annotations

import abc
import functools
from dataclasses import dataclass

import numpy as np

from bitnas._registry import Registry
from bitnas.evaluators.config import DataSpec

__all__ = ["DATASETS", "Dataset", "DatasetInfo", "Splits", "load_splits"]


@dataclass(frozen=True)
class DatasetInfo:
    input_shape: tuple[int, ...]
    num_classes: int


@dataclass(frozen=True, eq=False)
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class Dataset(abc.ABC):
    info: DatasetInfo

    @abc.abstractmethod
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All samples: inputs (float32, [N, *input_shape], in [0, 1]) and labels (int64)."""


DATASETS: Registry[type[Dataset]] = Registry("dataset")


@DATASETS.register("digits")
class Digits(Dataset):
    """scikit-learn's 8x8 handwritten digits (1797 samples, shipped with the package)."""

    info = DatasetInfo(input_shape=(64,), num_classes=10)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import load_digits

        d = load_digits()
        # Pixels are integers 0..16: /16 maps them exactly onto [0, 1].
        return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS.get(name).info


@functools.lru_cache(maxsize=8)
def load_splits(spec: DataSpec) -> Splits:
    """The seeded, stratified split of ``spec``; cached per process (trials share it)."""
    from sklearn.model_selection import train_test_split

    x, y = DATASETS.get(spec.name)().arrays()
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=spec.test_fraction, random_state=spec.seed, stratify=y
    )
    val = spec.val_fraction / (1.0 - spec.test_fraction)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val, random_state=spec.seed, stratify=y_rest
    )
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test)
