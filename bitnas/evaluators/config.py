"""Settings of data and training, as frozen validated values (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass

from bitnas.errors import SpecError

__all__ = ["DataSpec", "TrainSpec"]

OPTIMIZERS = ("adam", "adamw", "sgd")
#: How long a trial trains: a fixed number of epochs, or to a validation plateau.
UNTIL = ("epochs", "converged")
#: Weight step-size rules (see ``bitnas.evaluators.quant``); kept here so specs load without torch.
WEIGHT_QUANT = ("absmax", "lsq")


def _number(
    name: str, v: object, *, low: float, integer: bool = False, open_low: bool = False
) -> None:
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or (v <= low if open_low else v < low):  # type: ignore[operator]
        kind = "an integer" if integer else "a number"
        rel = ">" if open_low else ">="
        raise SpecError(f"`{name}` must be {kind} {rel} {low:g}, got {v!r}", field=name)


@dataclass(frozen=True)
class DataSpec:
    """Which dataset and how it is split (the split is fixed by ``seed``). ``standardize``:
    the network standardizes its (quantized) input with the training split's mean and sd."""

    name: str = "digits"
    seed: int = 0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    root: str = ""
    samples: int = 0
    input_shape: tuple[int, ...] = ()
    num_classes: int = 0
    standardize: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.standardize, bool):
            raise SpecError(
                f"`standardize` must be true or false, got {self.standardize!r}",
                field="standardize",
            )
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"`name` must be a dataset name, got {self.name!r}", field="name")
        _number("seed", self.seed, low=0, integer=True)
        _number("samples", self.samples, low=0, integer=True)
        _number("num_classes", self.num_classes, low=0, integer=True)
        shape = self.input_shape
        if not isinstance(shape, (list, tuple)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape
        ):
            raise SpecError(
                f"`input_shape` must be a list of positive integers, got {shape!r}",
                field="input_shape",
            )
        object.__setattr__(self, "input_shape", tuple(shape))
        if not isinstance(self.root, str):
            raise SpecError(f"`root` must be a folder path, got {self.root!r}", field="root")
        for f in ("val_fraction", "test_fraction"):
            _number(f, getattr(self, f), low=0.0, open_low=True)
        if self.val_fraction + self.test_fraction >= 0.9:
            raise SpecError(
                "`val_fraction` + `test_fraction` must leave at least 10% for training, got "
                f"{self.val_fraction} + {self.test_fraction}",
                field="val_fraction",
            )


@dataclass(frozen=True)
class TrainSpec:
    """How every trial is trained. ``threads`` caps torch's intra-op threads per trial.

    Fidelity: ``until = "epochs"`` trains exactly ``epochs`` epochs; ``until = "converged"``
    trains until the validation accuracy has not improved by more than ``min_delta`` for
    ``patience`` epochs, at most ``epochs`` epochs, and keeps the weights of the best validation
    epoch. Either way the learning rate follows one cosine schedule over ``epochs``.
    ``lr`` is one learning rate or a list of them: with a list every trial trains once per rate
    and keeps the one with the best validation accuracy (selected on validation, never on test);
    each trial records the rate it kept and every rate's validation accuracy.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float | tuple[float, ...] = 3e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    threads: int = 1
    device: str = "cpu"
    weight_quant: str = "absmax"
    until: str = "epochs"
    patience: int = 5
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        _number("epochs", self.epochs, low=1, integer=True)
        _number("batch_size", self.batch_size, low=1, integer=True)
        lrs = self.lr
        if isinstance(lrs, (list, tuple)):
            if not lrs:
                raise SpecError(
                    "`lr` must be a number or a non-empty list of numbers, got []", field="lr"
                )
            for v in lrs:
                _number("lr", v, low=0.0, open_low=True)
            if len(set(lrs)) != len(lrs):
                raise SpecError(f"`lr` must not repeat a rate, got {list(lrs)}", field="lr")
            object.__setattr__(self, "lr", tuple(float(v) for v in lrs))
        else:
            _number("lr", lrs, low=0.0, open_low=True)
        if self.until not in UNTIL:
            raise SpecError(
                f"`until` must be one of {list(UNTIL)}, got {self.until!r}", field="until"
            )
        _number("patience", self.patience, low=1, integer=True)
        _number("min_delta", self.min_delta, low=0.0)
        _number("weight_decay", self.weight_decay, low=0.0)
        _number("threads", self.threads, low=1, integer=True)
        if self.weight_quant not in WEIGHT_QUANT:
            raise SpecError(
                f"`weight_quant` must be one of {list(WEIGHT_QUANT)}, got {self.weight_quant!r}",
                field="weight_quant",
            )
        if self.optimizer not in OPTIMIZERS:
            raise SpecError(
                f"`optimizer` must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}",
                field="optimizer",
            )
        if not isinstance(self.device, str) or not (
            self.device in ("cpu", "auto", "cuda") or self.device.startswith("cuda:")
        ):
            raise SpecError(
                f'`device` must be "auto", "cpu", "cuda" or "cuda:N", got {self.device!r}',
                field="device",
            )

    @property
    def lrs(self) -> tuple[float, ...]:
        """The learning rates every trial tries (one unless ``lr`` is a list)."""
        return self.lr if isinstance(self.lr, tuple) else (float(self.lr),)
