"""Two intake consumer instances (issue 13 point 3) against the real FerretDB: both file reports
in the same near-match bucket at the same moment, and one erases a person's reports from it
meanwhile; no entry is lost. Without the bucket's lock it fails: FerretDB 1.24 applies an update
as a read and then a write, so concurrent $addToSet lose entries (tried: about one in ten)."""

from __future__ import annotations

import threading
import uuid

from services.intake.store import IntakeStore


def _report(birth_year: int) -> dict:
    return {"_id": str(uuid.uuid4()), "case_id": str(uuid.uuid4()), "person": {"birth_year": birth_year},
            "detention": {"province": None}, "name_grams": ["ab", "bc"]}


def test_two_instances_filing_in_one_bucket_lose_no_entry(mongo, settings):
    db = mongo[f"{settings.db_prefix}intake_two"]
    try:
        year = 1987
        erased = [_report(year) for _ in range(10)]
        first = IntakeStore(db)
        for report in erased:
            first.add_to_near_buckets(report)
        batches = [[_report(year) for _ in range(60)] for _ in range(2)]
        failures = []

        def instance(reports, erase):
            try:
                store = IntakeStore(db)  # each consumer process has its own store and connection
                for i, report in enumerate(reports):
                    store.add_to_near_buckets(report)
                    if erase and i == 20:
                        store.drop_from_near_buckets([r["_id"] for r in erased], [f"y:{year}"])
            except Exception as exc:  # reported below, not lost in the thread
                failures.append(exc)

        threads = [threading.Thread(target=instance, args=(batch, n == 0)) for n, batch in enumerate(batches)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        entries = [e["r"] for e in first.near_entries(year, None)]
        assert sorted(entries) == sorted(r["_id"] for batch in batches for r in batch)
        assert db["near_bucket_locks"].count_documents({}) == 0  # every lock given back
    finally:
        mongo.drop_database(db.name)
