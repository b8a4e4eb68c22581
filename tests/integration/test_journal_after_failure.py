"""A write whose journal entry was lost with the database (the projection written, the entry
not) is journalled again when it is repeated, so every process's list shows it (issue 12 lists;
the e2e database-down test once found the case list one case short)."""

from __future__ import annotations

import datetime as dt

import pytest
from pymongo.errors import AutoReconnect

from shared.aggregates import VersionedStore
from shared.listindex import Column, ListIndex

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


class NoPublisher:
    def publish(self, *args, **kwargs):
        return None


def test_a_repeated_write_journals_again_what_a_lost_entry_left_out(mongo, settings, monkeypatch):
    db = mongo[f"{settings.db_prefix}journal_lost"]
    try:
        store = VersionedStore(db, "things")
        index = ListIndex(store.current, {"at": Column("number", lambda d: d.get("created_at"))}, order="at",
                          projection={"created_at": 1}, journal=store.journal).current()  # another process's list

        def decide(state):
            return None if state else ({"created_at": NOW}, [])

        real_append = store.journal.append

        def database_gone(_doc_id):
            raise AutoReconnect("the database went away")
        monkeypatch.setattr(store.journal, "append", database_gone)
        with pytest.raises(AutoReconnect):
            store.save("t1", decide, publisher=NoPublisher(), topic="things.events", now=NOW)
        assert store.current.find_one({"_id": "t1"}) is not None  # the projection was written
        assert index.current().select() == ([], 0)  # ... but no list knows of it

        monkeypatch.setattr(store.journal, "append", real_append)
        store.save("t1", decide, publisher=NoPublisher(), topic="things.events", now=NOW)  # the repeat
        assert index.current().select() == (["t1"], 1)
    finally:
        mongo.drop_database(db.name)
