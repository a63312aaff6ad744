"""Labels a person reviewing the study in optuna-dashboard sees first on a trial's page.

The dashboard's trial list shows only a trial's number and state, and its trial page shows
user attributes at the bottom, in a small scroll box: an over-budget trial, closed PRUNED
untrained, would look like one an early stopper stopped. The page's *Note* sits right under
the state, so bitnas writes there why the trial was not trained.

The note is written in optuna-dashboard's own record (study system attributes, the format of
``optuna_dashboard.save_note``). ``save_note`` itself reads all of the study's system attributes
to find the next note version, which would make every rejection cost more as a study grows; a
bitnas label is the trial's first note, version 1, so it is written directly.
"""

from __future__ import annotations

import optuna

__all__ = ["label_trial", "trial_label"]


def label_trial(trial: optuna.trial.Trial, text: str) -> None:
    """Set ``trial``'s optuna-dashboard note to ``text`` (Markdown, one chunk)."""
    from optuna_dashboard._note import SYSTEM_ATTR_MAX_LENGTH, note_str_key_prefix, note_ver_key

    study_id = trial.study._study_id
    storage = trial.storage
    storage.set_study_system_attr(study_id, note_ver_key(trial._trial_id), 1)
    storage.set_study_system_attr(
        study_id, f"{note_str_key_prefix(trial._trial_id)}0", text[:SYSTEM_ATTR_MAX_LENGTH]
    )


def trial_label(study: optuna.Study, trial_id: int) -> str:
    """The note optuna-dashboard shows on the trial's page ("" if none)."""
    from optuna_dashboard._note import get_note_from_system_attrs

    attrs = study._storage.get_study_system_attrs(study._study_id)
    return str(get_note_from_system_attrs(attrs, trial_id)["body"])
