"""The study specification: what a study file (TOML) or a launch script declares.

A study file has the sections [study], [data], [space], [budget], [train], [ray] and
[limits] ([table] or [supernet] choose another evaluator than training every trial); see
``studies/digits.toml``. Every error names the field, the bad value, what is allowed and where.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bitnas.errors import RegistryError, SpecError, StorageError
from bitnas.evaluators import DataSpec, TrainedEvaluator, TrainSpec, dataset_info
from bitnas.evaluators._base import Evaluator
from bitnas.evaluators.limits import TrialLimits, limited
from bitnas.evaluators.supernet import SupernetEvaluator, SupernetSpec
from bitnas.evaluators.table import TableEvaluator
from bitnas.search.problem import Problem
from bitnas.search.ray_cluster import RaySettings
from bitnas.search.samplers import SAMPLERS
from bitnas.search.stopping import STOPPERS, Stopper, make_stopper
from bitnas.search.storage import check_url
from bitnas.spaces import SPACES, Budget, SearchSpace
from bitnas.spaces.architecture import NeuronSpec
from bitnas.studies.sweep import SweepSection

__all__ = ["SECTIONS", "StudySection", "StudySpec"]

# "/" separates the parts of a sweep cell's name (``<name>/<allocation>/<budget>``).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)*$")


@dataclass(frozen=True)
class StudySection:
    """[study]: the study's name, storage, target trial count, sampler and seed; ``artifacts``
    is the folder for its artifacts ("": beside the storage, see bitnas.search.artifacts);
    ``stopper`` names the early stopper (parameters in [stopper]; "none": every trial trains
    to the end)."""

    name: str
    storage: str = ""
    trials: int = 40
    sampler: str = "tpe"
    seed: int = 0
    artifacts: str = ""
    stopper: str = "none"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise SpecError(
                "`name` must be letters, digits, '_', '-' or '.', starting with a letter or "
                f"digit (parts may be joined by '/'), got {self.name!r}",
                field="name",
            )
        if not self.storage:
            object.__setattr__(self, "storage", f"sqlite:///runs/{self.name}.db")
        if not isinstance(self.storage, str) or "://" not in self.storage:
            raise SpecError(
                "`storage` must be a database URL like sqlite:///runs/x.db or a journal file "
                f"URL like journal:///runs/x.log, got {self.storage!r}",
                field="storage",
            )
        try:
            check_url(self.storage)
        except StorageError as e:
            raise SpecError(f"`storage`: {e}", field="storage") from None
        t = self.trials
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise SpecError(f"`trials` must be an integer >= 0, got {t!r}", field="trials")
        if self.sampler not in SAMPLERS:
            raise SpecError(
                f"`sampler` must be one of {SAMPLERS.names()}, got {self.sampler!r}",
                field="sampler",
            )
        s = self.seed
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise SpecError(f"`seed` must be an integer >= 0, got {s!r}", field="seed")
        if not isinstance(self.artifacts, str):
            raise SpecError(
                f"`artifacts` must be a folder path (a string), got {self.artifacts!r}",
                field="artifacts",
            )
        if self.stopper not in STOPPERS:
            raise SpecError(
                f"`stopper` must be one of {STOPPERS.names()}, got {self.stopper!r}",
                field="stopper",
            )


def _check_keys(section: str, table: Mapping[str, Any], allowed: list[str]) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise SpecError(
                f"unknown key `{key}` in [{section}]{hint} (allowed: {', '.join(sorted(allowed))})",
                field=key,
            )


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


_NEURON_KEYS = ["leak", "v_init"]
#: Keys added after studies were first stored, with the value their absence meant then: a study
#: stored before a key existed resumes when the key still has that value.
_LEGACY = {
    ("data", "standardize"): False,
    ("train", "until"): "epochs",
    ("train", "patience"): 5,
    ("train", "min_delta"): 0.0,
    ("supernet", "thresholds"): "bits",
    ("supernet", "norms"): "shared",
    ("supernet", "finetune_steps"): 0,
    ("supernet", "finetune_lr"): 0.0,
}
_DERIVED = {"input_shape", "num_classes", "neuron"}


def _build_space(table: Mapping[str, Any], data: DataSpec) -> SearchSpace:
    family = table.get("family", "mlp")
    if family not in SPACES:
        raise SpecError(f"`family` must be one of {SPACES.names()}, got {family!r}", field="family")
    cls = SPACES.get(family)
    allowed = ["family", *_NEURON_KEYS] + [f for f in _fields(cls) if f not in _DERIVED]
    _check_keys("space", table, allowed)
    kwargs = {k: v for k, v in table.items() if k not in ("family", *_NEURON_KEYS)}
    neuron = NeuronSpec(**{k: table[k] for k in _NEURON_KEYS if k in table})
    info = dataset_info(data)
    return cls(input_shape=info.input_shape, num_classes=info.num_classes, neuron=neuron, **kwargs)  # type: ignore[call-arg]


@dataclass(frozen=True)
class TableSection:
    """[table]: look results up in an exhaustive table (``bitnas bench-table``) instead of
    training; [train] is then unused. ``path`` is relative to the working directory."""

    path: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.path, str):
            raise SpecError(f"`path` must be a file path, got {self.path!r}", field="path")


@dataclass(frozen=True)
class StudySpec:
    """A whole study: build one with ``StudySpec.from_dict`` or ``bitnas.load_spec(path)``."""

    study: StudySection
    data: DataSpec
    space: SearchSpace
    budget: Budget = field(default_factory=Budget)
    train: TrainSpec = field(default_factory=TrainSpec)
    ray: RaySettings = field(default_factory=RaySettings)
    source: str | None = None
    table: TableSection = field(default_factory=TableSection)
    #: [stopper]: parameters of the stopper named by [study] `stopper` (its defaults if empty)
    stopper: Mapping[str, Any] = field(default_factory=dict)
    limits: TrialLimits = field(default_factory=TrialLimits)
    sweep: SweepSection | None = None  # [sweep]: see bitnas.studies.sweep
    #: [supernet]: measure sub-networks of one weight-sharing supernet instead of training each
    supernet: SupernetSpec | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> StudySpec:
        """Validate a parsed study file (``source`` names it in error messages)."""
        origin = source or "the study spec"
        if not isinstance(data, Mapping):
            raise SpecError(f"a study spec must be a table of sections, got {type(data).__name__}")
        for name in data:
            if name not in SECTIONS:
                close = difflib.get_close_matches(name, SECTIONS, n=1)
                hint = f"; did you mean [{close[0]}]?" if close else ""
                raise SpecError(
                    f"unknown section [{name}]{hint} (allowed: "
                    f"{', '.join(f'[{s}]' for s in SECTIONS)})",
                    where=origin,
                )
        tables: dict[str, Mapping[str, Any]] = {}
        for name in SECTIONS:
            table = data.get(name, {})
            if not isinstance(table, Mapping):
                raise SpecError(f"[{name}] must be a table, got {table!r}", where=origin)
            tables[name] = table
        if "study" not in data or "name" not in tables["study"]:
            raise SpecError("[study] must set `name`", field="name", where=f"[study] of {origin}")

        def section(name: str, build: Any) -> Any:
            try:
                return build(tables[name])
            except SpecError as e:
                raise e.located(f"[{name}] of {origin}") from None
            except (RegistryError, TypeError) as e:  # unknown dataset name, mistyped value
                raise SpecError(str(e), where=f"[{name}] of {origin}") from None

        def plain(name: str, kls: type) -> Any:
            def build(table: Mapping[str, Any]) -> Any:
                _check_keys(name, table, _fields(kls))
                return kls(**table)

            return section(name, build)

        study = plain("study", StudySection)
        data_spec = plain("data", DataSpec)
        section("data", lambda t: dataset_info(data_spec))
        space = section("space", lambda t: _build_space(t, data_spec))
        budget = plain("budget", Budget)
        train = plain("train", TrainSpec)
        ray = plain("ray", RaySettings)
        table = plain("table", TableSection)

        def build_stopper(t: Mapping[str, Any]) -> dict[str, Any]:
            if t and study.stopper == "none":
                raise SpecError(
                    f"[stopper] sets {', '.join(f'`{k}`' for k in t)} but [study] `stopper` is "
                    '"none": set `stopper = "pareto"` in [study], or remove [stopper]'
                )
            make_stopper(study.stopper, t)  # validates names and values
            return dict(t)

        stopper = section("stopper", build_stopper)
        if study.stopper != "none" and len(train.lrs) > 1:
            raise SpecError(
                f"`lr` lists {len(train.lrs)} rates {list(train.lrs)} but [study] `stopper` is "
                f"{study.stopper!r}: a stopper reads one training curve per trial; give one "
                'rate, or set `stopper = "none"`',
                field="lr",
                where=f"[train] of {origin}",
            )
        limits = plain("limits", TrialLimits)
        sweep = plain("sweep", SweepSection) if "sweep" in data else None
        supernet = plain("supernet", SupernetSpec) if "supernet" in data else None
        if supernet is not None and table.path:
            raise SpecError(
                "[supernet] and [table] both choose the evaluator: keep one of them",
                where=origin,
            )
        if supernet is not None and train.weight_quant != "absmax":
            raise SpecError(
                f"[supernet] shares one latent weight across bit widths and quantizes it with "
                f'`weight_quant = "absmax"`; [train] sets {train.weight_quant!r} (a learned step '
                "per bit width is not built)",
                field="weight_quant",
                where=f"[train] of {origin}",
            )
        if supernet is not None and not supernet.lr and len(train.lrs) > 1:
            raise SpecError(
                f"[supernet] trains one supernet at one learning rate; [train] `lr` lists "
                f"{list(train.lrs)}: set [supernet] `lr`, or give [train] one rate",
                field="lr",
                where=f"[train] of {origin}",
            )
        spec = cls(
            study,
            data_spec,
            space,
            budget,
            train,
            ray,
            source,
            table=table,
            stopper=stopper,
            limits=limits,
            sweep=sweep,
            supernet=supernet,
        )
        if sweep is not None:
            from bitnas.studies.sweep import cells

            cells(spec)  # every family must fit every budget: fail at load, not mid-sweep
        return spec

    def _override(self, section: str, fields: dict[str, Any]) -> StudySpec:
        changes = {k: v for k, v in fields.items() if v is not None}
        if not changes:
            return self
        try:
            value = dataclasses.replace(getattr(self, section), **changes)
        except SpecError as e:
            raise e.located("the command line") from None
        return dataclasses.replace(self, **{section: value})

    def with_ray(self, **fields: Any) -> StudySpec:
        """This spec with [ray] fields overridden (None values are ignored)."""
        return self._override("ray", fields)

    def replace(self, **study_fields: Any) -> StudySpec:
        """This spec with [study] fields overridden (None values are ignored)."""
        return self._override("study", study_fields)

    def to_dict(self) -> dict[str, Any]:
        """The effective spec (defaults filled in, overrides applied), JSON-ready."""
        space = {
            k: v
            for k, v in dataclasses.asdict(self.space).items()  # type: ignore[call-overload]
            if k not in ("input_shape", "num_classes")
        }
        neuron = space.pop("neuron", {})
        d = {
            "study": dataclasses.asdict(self.study),
            "data": dataclasses.asdict(self.data),
            "space": {"family": self.space.family, **space, **neuron},
            "budget": {"bitops": self.budget.bitops},
            "train": dataclasses.asdict(self.train),
        }
        if self.table.path:  # absent otherwise, so studies stored before [table] still resume
            d["table"] = dataclasses.asdict(self.table)
        if self.supernet is not None:  # absent otherwise, as [table]
            d["supernet"] = dataclasses.asdict(self.supernet)
            d["supernet"].pop("progress")
        if self.study.stopper != "none":
            d["stopper"] = self.make_stopper().settings()
        normalised: dict[str, Any] = json.loads(json.dumps(d))
        return normalised

    def measurement_differences(
        self, stored: Mapping[str, Any], sections: tuple[str, ...] | None = None
    ) -> list[str]:
        """How ``stored`` (an earlier ``to_dict``) differs in what changes measured results:
        [data], [space], [budget], [train], [table], [supernet] and the study seed (or only
        ``sections``, without the seed). A key ``stored`` lacks because it did not exist yet
        counts as its old meaning (``_LEGACY``). Empty if results can mix."""
        mine = self.to_dict()
        diffs = []
        every = ("data", "space", "budget", "train", "table", "supernet")
        for section in every if sections is None else sections:
            old, new = stored.get(section, {}), mine.get(section, {})
            for key in sorted(set(old) | set(new)):
                was = old.get(key, _LEGACY.get((section, key)))
                if was != new.get(key):
                    diffs.append(f"[{section}] {key}: {was!r} -> {new.get(key)!r}")
        if sections is not None:
            return diffs
        old_seed = stored.get("study", {}).get("seed")
        if old_seed != mine["study"]["seed"]:
            diffs.append(f"[study] seed: {old_seed!r} -> {mine['study']['seed']!r}")
        return diffs

    def supernet_checkpoint(self) -> str:
        """[supernet] `checkpoint`, by default ``<storage's folder>/<name>.supernet.pt``."""
        assert self.supernet is not None
        if self.supernet.checkpoint:
            return self.supernet.checkpoint
        url, name = self.study.storage, self.study.name.replace("/", "_")
        folder = "runs"
        if url.startswith("sqlite:///") and url[len("sqlite:///") :] not in ("", ":memory:"):
            folder = str(Path(url[len("sqlite:///") :]).parent)
        return str(Path(folder) / f"{name}.supernet.pt")

    def evaluator(self) -> Evaluator:
        if self.table.path:
            return TableEvaluator(path=self.table.path)
        if self.supernet is not None:
            return SupernetEvaluator(
                space=self.space,
                data=self.data,
                train=self.train,
                supernet=self.supernet,
                checkpoint=self.supernet_checkpoint(),
                seed=self.study.seed,
            )
        return TrainedEvaluator(data=self.data, train=self.train)

    def make_stopper(self) -> Stopper:
        """The early stopper [study] `stopper` names, with the [stopper] parameters."""
        name = self.study.stopper
        # [stopper] belongs to the stopper the file names; a command-line `--stopper none`
        # switches it off without making those parameters an error
        try:
            return make_stopper(name, self.stopper if name != "none" else {})
        except SpecError as e:
            raise e.located(f"[stopper] of {self.source or 'the study spec'}") from None

    def problem(self) -> Problem:
        evaluator = limited(self.evaluator(), self.limits)  # caps: each trial in a child process
        return Problem(
            space=self.space,
            evaluator=evaluator,
            budget=self.budget,
            seed=self.study.seed,
            stopper=self.make_stopper(),
        )


SECTIONS = [
    "study",
    "data",
    "space",
    "budget",
    "train",
    "ray",
    "table",
    "stopper",
    "limits",
    "sweep",
    "supernet",
]
