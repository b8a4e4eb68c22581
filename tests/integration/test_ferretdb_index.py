"""FerretDB v1.24 on SQLite queries _id through an expression its own index does not cover; our
FerretDB build adds the index the queries need (infra/ferretdb/main.go). Checked on the plan
SQLite itself chooses, not on timings."""

import sqlite3
import uuid
from pathlib import Path

from tests.support import wait_for

FERRETDB_ID_QUERY = "SELECT _ferretdb_sjson FROM {table} WHERE _ferretdb_sjson->'$._id' = ?"


def test_lookups_by_id_use_an_index_in_every_collection(settings, mongo):
    name = f"indexprobe{uuid.uuid4().hex[:6]}"
    db = mongo[settings.database_name("case")]
    db[name].insert_many([{"_id": f"k{i}", "n": i} for i in range(50)])
    path = Path(settings.var_dir) / "ferretdb" / f"{settings.database_name('case')}.sqlite"

    def plan():
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            [(table,)] = con.execute("SELECT table_name FROM _ferretdb_collections WHERE name = ?", (name,)).fetchall()
            rows = con.execute("EXPLAIN QUERY PLAN " + FERRETDB_ID_QUERY.format(table=f'"{table}"'), ('"k1"',)).fetchall()
            return " ".join(row[-1] for row in rows)
        finally:
            con.close()

    detail = wait_for(lambda: "USING INDEX" in (p := plan()) and p, timeout_s=15, interval_s=0.5,
                      what="the _id index on a new collection")
    assert "SCAN" not in detail
    assert db[name].find_one({"_id": "k7"})["n"] == 7
