"""`create`: read a running stack (as the operator, who may read every database and topic) into
one archive. Order matters for a consistent restore while the stack serves:

1. the consumer groups' committed offsets first: each consumer records the events it applied in
   the same write as their effect, so an offset read before the databases never runs ahead of
   what the copied databases hold (events between are read again after a restore and skipped);
2. the databases, those downstream in the flow of events first (reporting, advocacy, case, then
   intake), so that an effect in a copied database comes from a change its source had stored
   before its own copy; each document is whole (a change and its outbox are one document write);
3. the topics last. A service's record published before its database's copy began is kept; one
   published after is kept only if its event is in the copy (every event a service publishes is
   kept in the `outbox` list of the document whose change it tells, published after that
   document was stored, and the marker of a pending one deleted only after it is out). So an
   event of a change stored in the copy is in the archive or still pending in its outbox (the
   relay publishes it after a restore; deterministic event ids: a consumer skips one it has
   seen), and an event of a change made after the copy is left out: no case is opened after a
   restore for a report the restore does not have.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
import urllib.parse

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from tqdm import tqdm

from infra.backup.archive import Writer
from shared.config import TOPICS, Settings, all_topics
from shared.kafka_auth import client_options
from shared.keys import backup_seal_key
from shared.mongo import connect

RAW = CodecOptions(document_class=RawBSONDocument)
STALL_S = 60
SECRET_SETTING = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|CREDENTIAL", re.I)


def settings_snapshot(environ: dict[str, str]) -> dict[str, str]:
    """The NRW_* settings that are not secret: names that look secret are left out, and a
    connection string loses any user and password."""
    kept = {}
    for name, value in sorted(environ.items()):
        if not name.startswith("NRW_") or SECRET_SETTING.search(name):
            continue
        if "://" in value and "@" in urllib.parse.urlsplit(value).netloc:
            parts = urllib.parse.urlsplit(value)
            value = urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        if "://" in value and "@" in value:  # a login the URL parser did not see (a '#' in the password)
            continue
        kept[name] = value
    return kept


def group_offsets(settings: Settings) -> dict[str, dict[str, dict[str, int]]]:
    """Every consumer group's committed offsets: {group: {topic: {partition: offset}}}."""
    admin = KafkaAdminClient(**client_options(settings, "operator"), client_id="nrw-backup",
                             request_timeout_ms=10000, bootstrap_timeout_ms=10000)
    try:
        groups = sorted(g[0] if isinstance(g, tuple) else g["group_id"] for g in admin.list_groups())
        found = {}
        for group in groups:
            offsets = admin.list_group_offsets({group: None})[group]
            kept: dict[str, dict[str, int]] = {}
            for tp, meta in offsets.items():
                if meta.offset >= 0:
                    kept.setdefault(tp.topic, {})[str(tp.partition)] = meta.offset
            found[group] = kept
        return found
    finally:
        admin.close()


DOWNSTREAM_FIRST = ("reporting", "advocacy", "case", "identity", "intake")


def databases(client, settings: Settings) -> list[str]:
    """The system's databases (each service's and the accounts', under its prefix), downstream ones
    first: what a restore will take back (infra/backup/load.py: unexpected_members)."""
    order = {settings.database_name(owner): i for i, owner in enumerate(DOWNSTREAM_FIRST)}
    return sorted((name for name in client.list_database_names() if name in order), key=order.__getitem__)


def _owner(settings: Settings, database: str) -> str | None:
    return next((s for s in TOPICS if settings.database_name(s) == database), None)


def create(settings: Settings, out, recipients: list, environ: dict[str, str], quiet: bool = False) -> dict:
    """Write the whole archive to the binary file `out`, its manifest sealed with the backup seal
    key (KeyMissing before anything is read if there is none); the manifest."""
    seal_key = backup_seal_key(settings)
    groups = group_offsets(settings)
    writer = Writer(out, recipients)
    try:
        cuts: dict[str, Cut] = {}
        counts = _write_databases(writer, settings, quiet, cuts)
        topics = _write_topics(writer, settings, quiet, cuts)
        writer.add_json("groups.json", groups)
        writer.add_json("settings.json", settings_snapshot(environ))
        return writer.close({
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "db_prefix": settings.db_prefix, "databases": counts, "topics": topics,
            "groups": {g: sum(len(p) for p in t.values()) for g, t in groups.items()},
        }, seal_key=seal_key)
    except BaseException:
        writer.abort()
        raise


class Cut:
    """A service's topic as its database's copy saw it: where each partition ended when the copy
    began, and every event id in the copied documents' outboxes."""

    def __init__(self, starts: dict[int, int]):
        self.starts = starts
        self.event_ids: set[str] = set()

    def keeps(self, partition: int, offset: int, value: bytes | None) -> bool:
        """True for a record from before the copy began, or one whose event is in the copy."""
        if offset < self.starts.get(partition, 0):
            return True
        try:
            return json.loads(value)["event_id"] in self.event_ids
        except (TypeError, ValueError, KeyError):
            return True  # not an event of ours (a poison record): kept as the topic holds it


def _write_databases(writer: Writer, settings: Settings, quiet: bool,
                     cuts: dict[str, Cut]) -> dict[str, dict[str, int]]:
    """Every collection of every database; for each service's database, its topic's Cut."""
    client = connect(settings, "operator", timeout_ms=10000)
    ends = KafkaConsumer(**client_options(settings, "operator"), group_id=None, bootstrap_timeout_ms=10000)
    try:
        names = databases(client, settings)
        plan = [(db, coll) for db in names for coll in sorted(client[db].list_collection_names())
                if not coll.startswith("system.")]
        total = sum(client[db][coll].estimated_document_count() for db, coll in plan)
        counts: dict[str, dict[str, int]] = {db: {} for db in names}
        with tqdm(total=total, unit="doc", desc="databases", disable=quiet) as bar:
            for db, coll in plan:
                owner = _owner(settings, db)
                if owner and TOPICS[owner] not in cuts:
                    topic = TOPICS[owner]
                    partitions = [TopicPartition(topic, p) for p in sorted(ends.partitions_for_topic(topic) or [])]
                    cuts[topic] = Cut({tp.partition: end for tp, end in ends.end_offsets(partitions).items()})
                collection = client[db].get_collection(coll, codec_options=RAW)
                chunks, count = [], 0
                for doc in collection.find({}, sort=[("_id", 1)]):
                    chunks.append(doc.raw)
                    if owner and b"outbox\x00" in doc.raw:
                        cuts[TOPICS[owner]].event_ids.update(e["event_id"] for e in doc.get("outbox") or []
                                                             if isinstance(e, RawBSONDocument) and "event_id" in e)
                    count += 1
                    bar.update(1)
                indexes = [_index_spec(ix) for ix in collection.list_indexes() if ix["name"] != "_id_"]
                writer.add(f"db/{db}/{coll}.bson", b"".join(chunks), count)
                writer.add_json(f"db/{db}/{coll}.indexes.json", indexes, len(indexes))
                counts[db][coll] = count
        return counts
    finally:
        ends.close()
        client.close()


def _index_spec(index) -> dict:
    """An index as JSON: its keys in order and its options (unique, sparse, ...)."""
    index = bson.decode(index.raw) if isinstance(index, RawBSONDocument) else dict(index)
    return {"keys": [[field, direction] for field, direction in index["key"].items()],
            "options": {k: v for k, v in index.items() if k not in ("v", "key", "ns")}}


def _write_topics(writer: Writer, settings: Settings, quiet: bool, cuts: dict[str, Cut]) -> dict[str, dict]:
    """Every topic's records to its current end, a service's topic as its Cut keeps them."""
    consumer = KafkaConsumer(**client_options(settings, "operator"), group_id=None, enable_auto_commit=False,
                             bootstrap_timeout_ms=10000, max_partition_fetch_bytes=8 << 20)
    try:
        present = consumer.topics()
        partitions = [TopicPartition(t, p) for t in all_topics() if t in present
                      for p in sorted(consumer.partitions_for_topic(t) or [])]
        starts = consumer.beginning_offsets(partitions)
        ends = consumer.end_offsets(partitions)  # where this backup stops: later records are not in it
        topics: dict[str, dict] = {}
        with tqdm(total=sum(ends[tp] - starts[tp] for tp in partitions), unit="record", desc="topics",
                  disable=quiet) as bar:
            for tp in partitions:
                records = _read_partition(consumer, tp, starts[tp], ends[tp], bar, cuts.get(tp.topic))
                writer.add(f"topics/{tp.topic}/{tp.partition}.bson", b"".join(records), len(records))
                topics.setdefault(tp.topic, {"partitions": 0, "records": {}})
                topics[tp.topic]["partitions"] += 1
                topics[tp.topic]["records"][str(tp.partition)] = {"count": len(records), "start": starts[tp],
                                                                  "end": ends[tp],
                                                                  "left_out": ends[tp] - starts[tp] - len(records)}
        return topics
    finally:
        consumer.close()


def _read_partition(consumer, tp: TopicPartition, start: int, end: int, bar, cut: Cut | None) -> list[bytes]:
    """One partition's records from start to end (those its Cut keeps), each a BSON document:
    offset, timestamp and its type, key, value, headers (the bytes as Kafka holds them)."""
    records: list[bytes] = []
    if end <= start:
        return records
    consumer.assign([tp])
    consumer.seek(tp, start)
    stalled_since = time.monotonic()
    while consumer.position(tp) < end:
        polled = consumer.poll(timeout_ms=1000, max_records=5000)
        if polled:
            stalled_since = time.monotonic()
        elif time.monotonic() - stalled_since > STALL_S:
            raise RuntimeError(f"{tp.topic} partition {tp.partition}: nothing read for {STALL_S} s at offset "
                               f"{consumer.position(tp)} of {end} (is the broker answering?)")
        for batch in polled.values():
            for record in batch:
                if record.offset >= end:
                    break
                bar.update(1)
                if cut is not None and not cut.keeps(tp.partition, record.offset, record.value):
                    continue
                records.append(bson.encode({
                    "offset": record.offset, "timestamp": record.timestamp, "timestamp_type": record.timestamp_type,
                    "key": record.key, "value": record.value,
                    "headers": [[name, value] for name, value in (record.headers or [])]}))
    return records


def environ_now() -> dict[str, str]:
    """This process's environment (for the settings snapshot)."""
    return dict(os.environ)
