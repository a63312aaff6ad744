"""The Python API for launch scripts; the CLI takes exactly this path.

import bitnas
spec = bitnas.load_spec("studies/digits.toml")
result = bitnas.run(spec, trials=20)
print(result.front())            # pandas DataFrame of the feasible Pareto front
result.study                     # the optuna.Study in its storage
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pyarrow as pa

from bitnas.errors import BudgetError, SpecError, StorageError
from bitnas.search import (
    counts,
    create_or_load_study,
    front_trials,
    load_study,
    make_sampler,
    open_storage,
    optimize,
    trials_table,
)
from bitnas.search.artifacts import put_study_file
from bitnas.search.problem import Problem
from bitnas.search.rdb_read import preload
from bitnas.search.storage import check_url, exclusive_writer, redact
from bitnas.search.warm_start import WarmStart, enqueue_front
from bitnas.studies.loader import load_spec
from bitnas.studies.spec import StudySpec
from bitnas.studies.study_artifacts import refresh_study_artifacts, store_for

__all__ = ["SPEC_ATTR", "StudyResult", "open_result", "run"]

#: Study user attribute holding the effective spec the study was created with.
SPEC_ATTR = "bitnas_spec"

FRONT_COLUMNS = [
    "number",
    "val_accuracy",
    "test_accuracy",
    "bitops",
    "event_bitops",
    "weight_bits",
    "timesteps",
    "summary",
]


@dataclass
class StudyResult:
    """A study in its storage, with views of its front and trials.

    ``added`` counts what the last ``run`` call added (empty for an opened study);
    ``warm_start`` says what a warm start enqueued and skipped (None without one).
    """

    study: optuna.Study
    storage_url: str
    spec: StudySpec | None = None
    added: dict[str, int] = field(default_factory=dict)
    warm_start: WarmStart | None = None

    def trials_table(self) -> pa.Table:
        """One row per trial (see ``bitnas.search.export.trials_table``)."""
        return trials_table(self.study)

    def front_table(self) -> pa.Table:
        """The feasible Pareto front, cheapest first, as an Arrow table."""
        table = self.trials_table()
        numbers = [t.number for t in front_trials(self.study)]
        rows = {n: i for i, n in enumerate(table.column("number").to_pylist())}
        return table.take([rows[n] for n in numbers])

    def front(self) -> object:
        """The feasible Pareto front as a pandas DataFrame (main columns first)."""
        df = self.front_table().to_pandas()
        cols = [c for c in FRONT_COLUMNS if c in df.columns]
        return df[cols + [c for c in df.columns if c not in cols]].reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        return counts(self.study.get_trials(deepcopy=False))


#: The study artifact holding a [supernet] study's trained supernet checkpoint.
SUPERNET_FILENAME = "supernet.pt"


def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(logging.WARNING)


def run(
    spec: StudySpec | str | Path,
    *,
    trials: int | None = None,
    sampler: str | None = None,
    storage: str | None = None,
    seed: int | None = None,
    backend: str = "local",
    address: str | None = None,
    max_concurrent: int | None = None,
    progress: bool = True,
    stopper: str | None = None,
    warm_start: str | Path | None = None,
    warm_start_storage: str | None = None,
    warm_start_layers: int = 1,
) -> StudyResult:
    """Run ``spec`` (a StudySpec or a study file path) until its study holds ``trials``
    finished trials; a study already in the storage is continued, never restarted.
    ``backend="ray"`` runs the trials on Ray Tune with the study file's [ray] settings
    (``address`` and ``max_concurrent`` override them). ``stopper`` overrides [study]
    `stopper` ("none" switches early stopping off).

    ``warm_start`` names an earlier study (its name, or its study file) whose feasible Pareto
    front is enqueued before anything is sampled (``bitnas.search.warm_start``); it is looked
    up in ``warm_start_storage``, by default this study's storage (for a study file: its own);
    ``warm_start_layers`` > 1 enqueues the next non-dominated layers of it too.
    """
    _quiet_optuna()
    if not isinstance(warm_start_layers, int) or warm_start_layers < 1:
        raise SpecError(f"warm_start_layers must be an integer >= 1, got {warm_start_layers!r}")
    if not isinstance(spec, StudySpec):
        spec = load_spec(spec)
    if spec.sweep is not None:
        raise SpecError(
            f"{spec.source or 'this spec'} is a sweep (it has a [sweep] section): run it with "
            "`bitnas run` or bitnas.studies.sweep.run_sweep, one study per cell"
        )
    if storage is not None:  # the file's own storage was checked as the file was loaded
        check_url(storage, source="--storage")
    spec = spec.replace(trials=trials, sampler=sampler, storage=storage, seed=seed, stopper=stopper)
    if backend != "ray" and (address is not None or max_concurrent is not None):
        raise SpecError("--address and --max-concurrent apply only with --backend ray")
    spec = spec.with_ray(address=address, max_concurrent=max_concurrent)
    _check_job_storage(spec.study.storage, backend)
    st = spec.study
    problem = spec.problem()
    try:
        problem.check_feasible()  # before the storage: an infeasible study leaves nothing behind
    except BudgetError as e:
        if not spec.source:
            raise
        raise BudgetError(f"{e} (in [budget] of {spec.source})") from None
    with exclusive_writer(st.storage):
        warm = (warm_start, warm_start_storage, warm_start_layers)
        return _run(spec, problem, backend, progress, warm)


def _run(
    spec: StudySpec,
    problem: Problem,
    backend: str,
    progress: bool,
    warm_from: tuple[str | Path | None, str | None, int],
) -> StudyResult:
    st = spec.study
    warm_start, warm_start_storage, warm_start_layers = warm_from
    store = open_storage(st.storage)
    # after the storage: its errors (an unwritable folder, ...) are the ones to report
    artifacts = store_for(st.storage, st.artifacts)
    problem = dataclasses.replace(problem, artifacts=artifacts)
    # Seed the sampler from the study seed *and* the trials already stored, so a resumed run
    # continues the sequence instead of replaying its first proposals. The study is opened
    # once (a placeholder sampler until its trials are counted): a database study's first
    # read loads every trial.
    study = create_or_load_study(
        store, st.name, problem, optuna.samplers.RandomSampler(), st.storage
    )
    preload(study)  # a long database study: its trials in one read (rdb_read.py)
    existing = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(st.sampler, st.seed + 7919 * existing, problem)
    stored = study.user_attrs.get(SPEC_ATTR)
    if stored is not None:
        diffs = spec.measurement_differences(stored)
        if diffs:
            raise StorageError(
                f"study {st.name!r} in {redact(st.storage)} was measured under other settings; "
                "results "
                "of different settings must not mix in one study (use a new study name or "
                "storage, or restore the settings): " + "; ".join(diffs)
            )
    else:
        stored_spec = spec.to_dict()
        # a database password in the URL is not kept with the study (anyone who reads the
        # study, its export or its report would read it)
        stored_spec["study"]["storage"] = redact(st.storage)
        study.set_user_attr(SPEC_ATTR, stored_spec)
        study.set_user_attr("source", spec.source or "")
    finished = counts(study.get_trials(deepcopy=False))["finished"]
    missing = max(0, st.trials - finished)
    warm = None
    if warm_start is not None:
        source = _warm_source(warm_start, warm_start_storage, st.storage)
        warm = enqueue_front(study, problem, source, limit=missing, layers=warm_start_layers)
    options = {"settings": spec.ray} if backend == "ray" else {}
    # the target, not the difference: runs sharing the study finish trials while this one
    # starts (warm start, data loading, Ray start-up)
    added = optimize(
        study, problem, missing, backend=backend, progress=progress, target=st.trials, **options
    )
    if artifacts is not None:
        refresh_study_artifacts(study, artifacts, budget=spec.budget.bitops)
        checkpoint = Path(spec.supernet_checkpoint()) if spec.supernet is not None else None
        if checkpoint is not None and checkpoint.is_file():  # the supernet, beside its trials
            put_study_file(artifacts, study, SUPERNET_FILENAME, checkpoint.read_bytes())
    return StudyResult(study=study, storage_url=st.storage, spec=spec, added=added, warm_start=warm)


def _warm_source(target: str | Path, storage: str | None, default: str) -> optuna.Study:
    """The study to warm-start from: a study file (its storage unless ``storage``), or a study
    name in ``storage`` (default: the running study's storage)."""
    if str(target).endswith(".toml") or Path(target).is_file():
        return open_result(target, storage=storage).study
    if not str(target):
        raise SpecError("--warm-start needs a study name or study file")
    return open_result(str(target), storage=storage or default).study


FILES = ("sqlite", "journal")


def _check_job_storage(url: str, backend: str) -> None:
    """Inside a Ray job the driver runs in a temporary copy of the working directory, so a
    relative SQLite path would put the study there, to be lost with the job."""
    rel = any(url.startswith(f"{s}:///") and not url.startswith(f"{s}:////") for s in FILES)
    if rel and os.environ.get("RAY_JOB_ID") and backend == "ray":
        raise StorageError(
            f"storage {url} is relative, and this Ray job runs in a temporary working "
            "directory: give an absolute path (sqlite:////abs/path/study.db, "
            "journal:////abs/path/study.log) or a database URL"
        )


def open_result(target: StudySpec | str | Path, *, storage: str | None = None) -> StudyResult:
    """Open an existing study: from a study file (its name and storage) or a study name
    (storage from ``storage``, else ``sqlite:///runs/<name>.db``)."""
    _quiet_optuna()
    spec: StudySpec | None = None
    if isinstance(target, StudySpec):
        spec = target
    elif str(target).endswith(".toml") or Path(target).is_file():
        spec = load_spec(target)
    if spec is not None and spec.sweep is not None:
        from bitnas.studies.sweep import sweep_names

        names = sweep_names(spec)
        raise SpecError(
            f"{spec.source or 'this spec'} is a sweep of {len(names)} studies; name one, e.g. "
            f"{names[0]!r} with --storage {storage or spec.study.storage}, or use `bitnas report`"
        )
    if spec is not None:
        name, url = spec.study.name, storage or spec.study.storage
    else:
        name = str(target)
        if not name:
            raise SpecError("a study file or study name is required")
        url = storage or f"sqlite:///runs/{name}.db"
    study = load_study(open_storage(url, create=False), name, url)
    preload(study)  # a database study's trials in one read, not through the ORM (rdb_read.py)
    if len(study.directions) != 2:
        raise StorageError(
            f"study {name!r} in {redact(url)} has {len(study.directions)} objective(s), not the "
            "two (accuracy, cost) of a bitnas study"
        )
    return StudyResult(study=study, storage_url=url, spec=spec)
