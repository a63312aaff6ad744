"""Reading every trial of a database study at once, for the commands that read a whole study
(`bitnas pareto`, `export`, `report`) and a run that opens a long study.

Optuna's RDB storage builds each trial through SQLAlchemy's ORM: one mapped object per
trial, parameter, value and attribute row (35 for a bitnas trial), and the parameter's
distribution decoded from its JSON twice per row. For a 10,000-trial study that is 350,000
ORM objects and tens of seconds before the first trial is read. ``preload`` reads the same
six tables with one plain SELECT each (SQLAlchemy Core: rows, no ORM), decodes each distinct
distribution once, builds the trials exactly as Optuna's ``_build_frozen_trial_from_trial_model``
does, and hands them to the study's Optuna cache (``_CachedStorage``) the way its own first
read would: finished trials cached for good, unfinished ones read again on the next call.
The trials are selected first: a trial that another run creates or finishes meanwhile is
either not in that first list (its id is above every finished one read, so the cache reads
it next time) or listed unfinished (read again next time); a finished trial's values and
attributes were committed before its state, so they are in the later selects.
Optuna's internals used here are pinned by the ``optuna>=5,<6`` requirement; where they are
not as expected (another storage, another Optuna), ``preload`` does nothing and Optuna's own
read follows, so what the caller sees never differs.
"""

from __future__ import annotations

import datetime
import json
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.trial import FrozenTrial

__all__ = ["preload", "read_trials"]


@lru_cache(maxsize=4096)
def _distribution(text: str) -> BaseDistribution:
    return json_to_distribution(text)


def _local(utc: datetime.datetime | None) -> datetime.datetime | None:
    """A stored naive-UTC datetime as Optuna shows it: naive local time (``TrialModel``)."""
    if utc is None:
        return None
    return utc.replace(tzinfo=datetime.UTC).astimezone().replace(tzinfo=None)


def _cache_of(study: optuna.Study) -> Any:
    """The study's ``_CachedStorage`` over an ``RDBStorage``, or None for any other storage."""
    from optuna.storages._cached_storage import _CachedStorage

    storage = study._storage
    if not isinstance(storage, _CachedStorage):  # a journal: no SQLAlchemy import (0.7 s)
        return None
    from optuna.storages import RDBStorage

    return storage if isinstance(storage._backend, RDBStorage) else None


def read_trials(storage: optuna.storages.RDBStorage, study_id: int) -> list[FrozenTrial]:
    """Every trial of study ``study_id`` in ``storage``, by trial id: equal, field by field,
    to ``storage.get_all_trials(study_id)`` (a test holds the two together)."""
    from optuna.storages._rdb import models
    from sqlalchemy import select

    t = models.TrialModel.__table__
    ids = select(t.c.trial_id).where(t.c.study_id == study_id).scalar_subquery()

    def rows(model: Any, *cols: str) -> Iterable[Any]:
        table = model.__table__
        query = select(table.c.trial_id, *(table.c[c] for c in cols))
        return conn.execute(query.where(table.c.trial_id.in_(ids)).order_by(table.c[pk(model)]))

    def pk(model: Any) -> str:
        return str(model.__table__.primary_key.columns.keys()[0])

    values: dict[int, dict[int, float]] = defaultdict(dict)
    params: dict[int, list[tuple[str, float, str]]] = defaultdict(list)
    user: dict[int, dict[str, Any]] = defaultdict(dict)
    system: dict[int, dict[str, Any]] = defaultdict(dict)
    steps: dict[int, dict[int, float]] = defaultdict(dict)
    value_of = models.TrialValueModel.stored_repr_to_value
    step_of = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value
    with storage.engine.connect() as conn:
        trials = conn.execute(
            select(t.c.trial_id, t.c.number, t.c.state, t.c.datetime_start, t.c.datetime_complete)
            .where(t.c.study_id == study_id)
            .order_by(t.c.trial_id)
        ).all()
        for tid, objective, value, kind in rows(
            models.TrialValueModel, "objective", "value", "value_type"
        ):
            values[tid][objective] = value_of(value, kind)
        for tid, name, value, dist in rows(
            models.TrialParamModel, "param_name", "param_value", "distribution_json"
        ):
            params[tid].append((name, value, dist))
        for tid, key, text in rows(models.TrialUserAttributeModel, "key", "value_json"):
            user[tid][key] = json.loads(text)
        for tid, key, text in rows(models.TrialSystemAttributeModel, "key", "value_json"):
            system[tid][key] = json.loads(text)
        for tid, step, value, kind in rows(
            models.TrialIntermediateValueModel,
            "step",
            "intermediate_value",
            "intermediate_value_type",
        ):
            steps[tid][step] = step_of(value, kind)
    out = []
    for tid, number, state, start, complete in trials:
        vals = values.get(tid)
        ps = params.get(tid, [])
        out.append(
            FrozenTrial(
                number=number,
                state=state,
                value=None,
                values=[vals[i] for i in range(len(vals))] if vals else None,
                datetime_start=_local(start),
                datetime_complete=_local(complete),
                params={n: _distribution(d).to_external_repr(v) for n, v, d in ps},
                distributions={n: _distribution(d) for n, _, d in ps},
                user_attrs=user.get(tid, {}),
                system_attrs=system.get(tid, {}),
                intermediate_values=steps.get(tid, {}),
                trial_id=tid,
            )
        )
    return out


def preload(study: optuna.Study) -> bool:
    """Fill the Optuna cache of a database study with all its trials in one read (module
    docstring); False (nothing done) for a journal or in-memory study, or a cache that already
    holds trials of this study."""
    cache = _cache_of(study)
    if cache is None:
        return False
    from sqlalchemy.exc import SQLAlchemyError

    study_id = study._study_id
    with cache._lock:
        info = cache._studies.get(study_id)
        if info is not None and (info.trials or info.last_finished_trial_id != -1):
            return False
        try:
            trials = read_trials(cache._backend, study_id)
        except SQLAlchemyError:  # a server down, ...: Optuna's own read reports it (retried)
            return False
        if study_id not in cache._studies:
            from optuna.storages._cached_storage import _StudyInfo

            cache._studies[study_id] = _StudyInfo()
        info = cache._studies[study_id]
        cache._add_trials_to_cache(study_id, trials)
        # as Optuna's own read (_read_trials_from_remote_storage) leaves its bookkeeping
        for trial in trials:
            if trial.state.is_finished():
                info.last_finished_trial_id = max(info.last_finished_trial_id, trial._trial_id)
            else:
                info.unfinished_trial_ids.add(trial._trial_id)
    return True
