"""bitnas/search/attr_writes.py on a real PostgreSQL server: the multi-row upsert reads back
as Optuna's one write per attribute, in one commit, and a finished trial refuses it."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy.event

from bitnas.search.attr_writes import set_trial_attrs, write_attrs
from bitnas.search.storage import open_storage
from tests.search.test_attr_writes import SYSTEM, USER

pytestmark = [pytest.mark.slow]


def test_a_batch_reads_back_as_one_call_per_attribute_on_postgres(pg):  # type: ignore[no-untyped-def]
    storage = open_storage(pg.url)
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    one, batch = study.ask(), study.ask()
    for t in (one, batch):
        t.set_user_attr("owner", "someone else")
    for k, v in USER.items():
        one.set_user_attr(k, v)
    for k, v in SYSTEM.items():
        storage.set_trial_system_attr(one._trial_id, k, v)
    commits: list[int] = []
    sqlalchemy.event.listen(storage.engine, "commit", lambda conn: commits.append(1))
    set_trial_attrs(batch, USER, SYSTEM)
    assert commits == [1]
    fresh = open_storage(pg.url, create=False)
    a, b = (fresh.get_trial(t._trial_id) for t in (one, batch))
    assert b.user_attrs == a.user_attrs == USER
    assert b.system_attrs == a.system_attrs and b.constraints == a.constraints
    study.tell(batch, [0.5, 1.0])
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        write_attrs(storage, batch._trial_id, {"late": 1})
    assert "late" not in fresh.get_trial(batch._trial_id).user_attrs
