"""The second stage of a supernet study: re-train its front from scratch.

Stage 1 is an ordinary study whose file has a [supernet] section: every trial is a sub-network
measured with inherited weights (seconds each), so thousands of them can be searched with any
sampler. Its feasible Pareto front is then re-trained, each architecture from scratch with the
trained evaluator, in a study of its own in the same storage (``<name>-retrain``), so the front
bitnas reports is stand-alone accuracy. The front is enqueued through the warm start
(``bitnas.search.warm_start``), so a re-training interrupted half-way resumes with the rest.
Both studies are marked (study attribute ``bitnas_stage``).

Supernet accuracy ranks stand-alone accuracy only approximately (Kendall tau 0.69-0.86 on the
committed tables), so an architecture just behind the supernet's front is often on the true
one. Stage 2 therefore re-trains the first ``layers`` non-dominated layers (NSGA-II's sorting;
default ``DEFAULT_LAYERS`` = 2: the front and the front of the rest). Measured on the committed
exhaustive tables, every supernet seed (docs/BENCHMARKS.md, "how much of the supernet's
choice to re-train"): the front alone recovered 96.9-98.8% of the true front's hypervolume,
two layers 97.7-99.7%, at about twice the re-training.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
from optuna.trial import TrialState

from bitnas.errors import SpecError
from bitnas.search.export import front_trials
from bitnas.search.records import ATTR_KEY, counts
from bitnas.search.storage import open_storage, study_names
from bitnas.studies.api import StudyResult, open_result, run
from bitnas.studies.loader import load_spec
from bitnas.studies.spec import StudySpec

__all__ = ["ATTR_STAGE", "DEFAULT_LAYERS", "RETRAIN_SUFFIX", "retrain_front"]

RETRAIN_SUFFIX = "-retrain"
ATTR_STAGE = "bitnas_stage"
#: Non-dominated layers of the supernet study that stage 2 re-trains by default.
DEFAULT_LAYERS = 2


def retrain_front(
    spec: StudySpec | str | Path,
    *,
    storage: str | None = None,
    limit: int | None = None,
    layers: int = DEFAULT_LAYERS,
    backend: str = "local",
    progress: bool = True,
) -> StudyResult:
    """Re-train the first ``layers`` non-dominated layers of the supernet study ``spec``'s
    feasible trials (layer by layer, cheapest first; at most ``limit`` of them) in the study
    ``<name>-retrain`` of the same storage; returns that study.

    Run again (the supernet study grown, more ``layers``, a larger ``limit``), it re-trains
    what the choice holds that ``<name>-retrain`` has not finished yet, and nothing twice."""
    if not isinstance(spec, StudySpec):
        spec = load_spec(spec)
    where = spec.source or "this spec"
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
        raise SpecError(f"layers must be an integer >= 1 (1: the front only), got {layers!r}")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise SpecError(f"limit must be an integer >= 1 (or none: all), got {limit!r}")
    if spec.supernet is None:
        raise SpecError(f"{where} has no [supernet] section: its trials are already stand-alone")
    spec = spec.replace(storage=storage)
    source = open_result(spec).study
    front = front_trials(source, layers=layers)
    if not front:
        raise SpecError(
            f"study {spec.study.name!r} in {spec.study.storage} has no feasible front to "
            "re-train yet: run it first"
        )
    picked = front if limit is None else front[:limit]
    name = spec.study.name + RETRAIN_SUFFIX
    done, finished = _retrained(spec.study.storage, name)
    todo = [t for t in picked if t.user_attrs.get(ATTR_KEY) not in done]
    # the target counts what stage 2 holds already: the warm start enqueues exactly ``todo``
    stage2 = dataclasses.replace(spec, supernet=None).replace(
        name=name, trials=finished + len(todo)
    )
    result = run(
        stage2,
        warm_start=spec.study.name,
        warm_start_storage=spec.study.storage,
        warm_start_layers=layers,
        backend=backend,
        progress=progress,
    )
    before = result.study.user_attrs.get(ATTR_STAGE, {}).get("layers", 0)
    result.study.set_user_attr(
        ATTR_STAGE, {"stage": "retrain", "of": spec.study.name, "layers": max(before, layers)}
    )
    source.set_user_attr(ATTR_STAGE, {"stage": "supernet", "retrained_in": name})
    return result


def _retrained(url: str, name: str) -> tuple[set[str], int]:
    """The architectures the stage-2 study ``name`` has finished, and its finished trials
    (none before it exists)."""
    store = open_storage(url)
    if name not in study_names(store):
        return set(), 0
    trials = optuna.load_study(study_name=name, storage=store).get_trials(deepcopy=False)
    done = {str(t.user_attrs.get(ATTR_KEY)) for t in trials if t.state == TrialState.COMPLETE}
    return done, counts(trials)["finished"]
