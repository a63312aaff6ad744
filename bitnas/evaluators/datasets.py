"""Datasets, registered by name; every one ships with a package, is generated locally, or is
read from a local folder — nothing is downloaded.

Each gives numpy arrays with inputs scaled to [0, 1] (the encoders' contract: ``input_bits``
quantizes this range, as the cost model counts it). With ``standardize`` (the default) the
splits also carry the mean and standard deviation of the *training split's* inputs (one scalar
each, never computed from validation or test samples); the network standardizes its encoded
input with them (``bitnas.evaluators.model``). A dataset with
an official test split keeps it (MNIST-1D, CIFAR-10, MNIST); the rest are split by ``seed``
(stratified). The validation split always comes from the training part, seeded. ``info`` is
known before the data is loaded, so a search space can be sized first.

The on-disk formats of torchvision's CIFAR-10, MNIST and FashionMNIST (and class-per-folder
images) are read here directly: torchvision's wheels do not load beside the pinned CPU torch
build, and these formats are a few lines each.
"""

from __future__ import annotations

import abc
import functools
import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bitnas._registry import Registry
from bitnas.errors import SpecError
from bitnas.evaluators.config import DataSpec

__all__ = ["DATASETS", "Dataset", "DatasetInfo", "Splits", "dataset_info", "load_splits"]


@dataclass(frozen=True)
class DatasetInfo:
    input_shape: tuple[int, ...]
    num_classes: int


@dataclass(frozen=True, eq=False)
class Splits:
    """The three splits; ``input_norm`` is (mean, sd) of ``x_train`` (None: not standardized)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_norm: tuple[float, float] | None = None

    def norm_record(self) -> dict[str, object]:
        """What a trial stores about the input normalization (JSON-ready)."""
        if self.input_norm is None:
            return {"standardized": False}
        mean, sd = self.input_norm
        return {"standardized": True, "mean": mean, "sd": sd, "from": "training split"}


Arrays = tuple[np.ndarray, np.ndarray]


class Dataset(abc.ABC):
    def __init__(self, spec: DataSpec) -> None:
        self.spec = spec

    @abc.abstractmethod
    def info(self) -> DatasetInfo:
        """Input shape and class count, without loading the samples."""

    @abc.abstractmethod
    def arrays(self) -> tuple[Arrays, Arrays | None]:
        """(all or training samples, the official test split or None); inputs float32 in
        [0, 1] shaped [N, *input_shape], labels int64."""


DATASETS: Registry[type[Dataset]] = Registry("dataset")


def _minmax(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ((x - lo) / (hi - lo)).clip(0.0, 1.0).astype(np.float32)


@DATASETS.register("digits")
class Digits(Dataset):
    """scikit-learn's 8x8 handwritten digits (1797 samples, shipped with the package).
    Shaped (1, 8, 8) so image families can use it; the MLP flattens it."""

    def info(self) -> DatasetInfo:
        return DatasetInfo((1, 8, 8), 10)

    def arrays(self) -> tuple[Arrays, Arrays | None]:
        from sklearn.datasets import load_digits

        d = load_digits()
        # Pixels are integers 0..16: /16 maps them exactly onto [0, 1].
        x = (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
        return (x, d.target.astype(np.int64)), None


@DATASETS.register("mnist1d")
class MNIST1D(Dataset):
    """MNIST-1D (Greydanus 2020), regenerated locally by the ``mnist1d`` package's generator
    with its default arguments (seed 42): 4000 training and 1000 official test sequences of
    length 40. Min-max scaled to [0, 1] with the training part's range."""

    def info(self) -> DatasetInfo:
        return DatasetInfo((1, 40), 10)

    def arrays(self) -> tuple[Arrays, Arrays | None]:
        try:
            from mnist1d.data import get_dataset_args, make_dataset
        except ImportError:  # pragma: no cover - mnist1d is a dependency
            raise SpecError("the mnist1d dataset needs the `mnist1d` package") from None
        state = np.random.get_state()
        try:
            d = make_dataset(get_dataset_args())  # reseeds numpy's global RNG: restored below
        finally:
            np.random.set_state(state)
        lo, hi = float(d["x"].min()), float(d["x"].max())
        x = _minmax(d["x"], lo, hi).reshape(-1, 1, 40)
        xt = _minmax(d["x_test"], lo, hi).reshape(-1, 1, 40)
        return (x, d["y"].astype(np.int64)), (xt, d["y_test"].astype(np.int64))


@DATASETS.register("synthetic")
class Synthetic(Dataset):
    """scikit-learn's ``make_classification``: ``samples`` (default 2000) points with 20
    features (10 informative) in 4 classes, generator seed 0; min-max scaled with the range of
    all samples (the split comes later; the range carries no label information)."""

    def info(self) -> DatasetInfo:
        return DatasetInfo((20,), 4)

    def arrays(self) -> tuple[Arrays, Arrays | None]:
        from sklearn.datasets import make_classification

        x, y = make_classification(
            n_samples=self.spec.samples or 2000,
            n_features=20,
            n_informative=10,
            n_redundant=4,
            n_classes=4,
            random_state=0,
        )
        return (_minmax(x, float(x.min()), float(x.max())), y.astype(np.int64)), None


@DATASETS.register("shape")
class ShapeOnly(Dataset):
    """No samples, only ``input_shape`` and ``num_classes`` from [data]: for costing networks
    of published sizes (``bitnas cost``) on data that is not on this machine."""

    def info(self) -> DatasetInfo:
        if not self.spec.input_shape or self.spec.num_classes < 2:
            raise SpecError(
                "the shape dataset needs `input_shape` (e.g. [3, 224, 224]) and `num_classes` "
                f"(>= 2) in [data], got {list(self.spec.input_shape)} and {self.spec.num_classes}"
            )
        return DatasetInfo(self.spec.input_shape, self.spec.num_classes)

    def arrays(self) -> tuple[Arrays, Arrays | None]:
        raise SpecError(
            "the shape dataset has no samples: it sizes and costs a space (`bitnas cost`); to "
            "train, name a dataset in [data]"
        )


def _root(spec: DataSpec, name: str) -> Path:
    if not spec.root:
        raise SpecError(f"the {name} dataset is read from a local folder: set `root` in [data]")
    root = Path(spec.root).expanduser()
    if not root.is_dir():
        raise SpecError(f"`root` {spec.root!r} of the {name} dataset is not a folder")
    return root


@DATASETS.register("cifar10")
class CIFAR10(Dataset):
    """CIFAR-10 from ``root/cifar-10-batches-py`` (torchvision's layout; never downloaded)."""

    def info(self) -> DatasetInfo:
        return DatasetInfo((3, 32, 32), 10)

    def arrays(self) -> tuple[Arrays, Arrays | None]:
        folder = _root(self.spec, "cifar10") / "cifar-10-batches-py"

        def load(names: list[str]) -> Arrays:
            xs, ys = [], []
            for n in names:
                path = folder / n
                if not path.is_file():
                    raise SpecError(f"cifar10: missing {path} (expected torchvision's layout)")
                with path.open("rb") as f:
                    batch = pickle.load(f, encoding="latin1")
                xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(batch["labels"], dtype=np.int64))
            return (np.concatenate(xs) / 255.0).astype(np.float32), np.concatenate(ys)

        return load([f"data_batch_{i}" for i in range(1, 6)]), load(["test_batch"])


def _idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not."""
    for p in (path, path.with_name(path.name + ".gz")):
        if p.is_file():
            raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            ndim = raw[3]
            dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
            return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    raise SpecError(f"missing {path} (expected torchvision's MNIST layout)")


class _IDXImages(Dataset):
    folder: str

    def info(self) -> DatasetInfo:
        return DatasetInfo((1, 28, 28), 10)

    def arrays(self) -> tuple[Arrays, Arrays | None]:
        raw = _root(self.spec, self.folder) / self.folder / "raw"

        def load(prefix: str) -> Arrays:
            x = _idx(raw / f"{prefix}-images-idx3-ubyte").reshape(-1, 1, 28, 28)
            y = _idx(raw / f"{prefix}-labels-idx1-ubyte")
            return (x / 255.0).astype(np.float32), y.astype(np.int64)

        return load("train"), load("t10k")


@DATASETS.register("mnist")
class MNIST(_IDXImages):
    """MNIST from ``root/MNIST/raw`` (torchvision's layout; never downloaded)."""

    folder = "MNIST"


@DATASETS.register("fashion_mnist")
class FashionMNIST(_IDXImages):
    """FashionMNIST from ``root/FashionMNIST/raw`` (torchvision's layout; never downloaded)."""

    folder = "FashionMNIST"


@DATASETS.register("image_folder")
class ImageFolder(Dataset):
    """Images in ``root/<class>/<file>`` (torchvision's ImageFolder layout), all of one size;
    classes are the sorted folder names. Read with Pillow."""

    def _files(self) -> tuple[list[str], list[tuple[Path, int]]]:
        root = _root(self.spec, "image_folder")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        if len(classes) < 2:
            raise SpecError(f"image_folder: {root} needs at least two class folders")
        files = [
            (f, c)
            for c, name in enumerate(classes)
            for f in sorted((root / name).iterdir())
            if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif")
        ]
        if not files:
            raise SpecError(f"image_folder: no images under {root}")
        return classes, files

    def _load(self, path: Path) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

    def info(self) -> DatasetInfo:
        classes, files = self._files()
        return DatasetInfo(tuple(self._load(files[0][0]).shape), len(classes))

    def arrays(self) -> tuple[Arrays, Arrays | None]:
        _, files = self._files()
        imgs = [self._load(f) for f, _ in files]
        if len({i.shape for i in imgs}) != 1:
            raise SpecError("image_folder: all images must have the same size and channels")
        x = (np.stack(imgs) / 255.0).astype(np.float32)
        return (x, np.array([c for _, c in files], dtype=np.int64)), None


def dataset_info(spec: DataSpec | str) -> DatasetInfo:
    if isinstance(spec, str):
        spec = DataSpec(name=spec)
    return DATASETS.get(spec.name)(spec).info()


@functools.lru_cache(maxsize=8)
def load_splits(spec: DataSpec) -> Splits:
    """The seeded, stratified split of ``spec``; cached per process (trials share it)."""
    from sklearn.model_selection import train_test_split

    (x, y), test = DATASETS.get(spec.name)(spec).arrays()
    if test is None:
        x, x_test, y, y_test = train_test_split(
            x, y, test_size=spec.test_fraction, random_state=spec.seed, stratify=y
        )
        val = spec.val_fraction / (1.0 - spec.test_fraction)
    else:
        x_test, y_test = test
        val = spec.val_fraction
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=val, random_state=spec.seed, stratify=y
    )
    norm = None
    if spec.standardize:
        # statistics of the training split only: validation and test are scaled with them
        mean, sd = float(x_train.mean(dtype=np.float64)), float(x_train.std(dtype=np.float64))
        norm = (mean, sd if sd > 0 else 1.0)
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, norm)
