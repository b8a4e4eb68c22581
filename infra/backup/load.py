"""`restore`: an archive back into an empty var/. Keys first (the databases' and the broker's
accounts start from them), then FerretDB and Kafka as the launcher starts them, the databases,
the topics (same partitions; the same offsets when a topic started at 0) and the consumer groups'
offsets, so that every consumer resumes where it was."""

from __future__ import annotations

import bisect
import json
import shutil
from pathlib import Path

from bson.raw_bson import RawBSONDocument
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata
from pymongo import IndexModel

import bson
from infra.backup.archive import ArchiveError, split_bson
from shared.bus import ensure_topics
from shared.config import SERVICES, Settings, all_topics
from shared.kafka_auth import client_options
from shared.mongo import connect

# What a restore fills, under var/; anything else there (logs, pid files, test folders) is left.
DATA_ENTRIES = ("secrets", "person-keys", "ferretdb", "kafka")
BATCH_BYTES = 4 << 20


def occupied(var: Path) -> dict[str, int]:
    """The data entries of var/ that hold something: {entry: number of files}."""
    found = {}
    for entry in DATA_ENTRIES:
        path = var / entry
        if path.exists():
            files = sum(1 for p in path.rglob("*") if p.is_file()) if path.is_dir() else 1
            if files:
                found[entry] = files
    return found


def wipe(var: Path) -> None:
    """Remove var/'s data entries (after the caller said so with --force)."""
    for entry in DATA_ENTRIES:
        path = var / entry
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def restore_keys(members, secrets: Path, person_keys: Path) -> int:
    """Write the key files of a keys archive (0600, folders 0700); how many."""
    from shared.keys import private_dir, write_new

    written = 0
    for name, data in members:
        if not _key_member(name):
            raise ArchiveError(f"unexpected entry {name!r} in the keys archive")
        folder, _, filename = name.partition("/")
        target = {"secrets": secrets, "person-keys": person_keys}[folder]
        private_dir(target)
        if not write_new(target / filename, data):
            raise ArchiveError(f"{target / filename} exists already: restore keys into an empty var/")
        written += 1
    return written


def _key_member(name: str) -> bool:
    folder, _, filename = name.partition("/")
    return folder in ("secrets", "person-keys") and bool(filename) and "/" not in filename \
        and not filename.startswith(".")


def unexpected_keys(manifest: dict) -> list[str]:
    """The members of a checked keys archive's manifest that restore_keys would refuse: found before
    a restore changes anything (with --force, before var/ is wiped)."""
    return sorted(name for name in manifest.get("members") or {} if not _key_member(name))


def unexpected_members(settings: Settings, manifest: dict) -> list[str]:
    """The members of a checked manifest that a restore would not apply: a database that is not one
    of the system's under this stack's prefix, a system collection, a topic that is not the
    system's, a partition that is not a number, anything else. A restore refuses an archive that
    has any, before it changes anything."""
    databases = {settings.database_name(owner) for owner in (*SERVICES, "identity")}
    topics = set(all_topics())
    odd = []
    for name in manifest.get("members") or {}:
        parts = name.split("/")
        if parts[0] == "db" and len(parts) == 3 and parts[2].endswith((".bson", ".indexes.json")):
            collection = parts[2].removesuffix(".indexes.json").removesuffix(".bson")
            fine = parts[1] in databases and collection and not collection.startswith("system.") and "$" not in collection
        elif parts[0] == "topics" and len(parts) == 3 and parts[2].endswith(".bson"):
            fine = parts[1] in topics and parts[2][:-len(".bson")].isdigit()
        else:
            fine = name in ("groups.json", "settings.json")
        if not fine:
            odd.append(name)
    return sorted(odd)


def new_offset(originals: list[int], committed: int) -> int:
    """A committed offset in the restored partition: the new offset of the first archived record at
    or after it (the same number when the partition started at 0 and nothing was left out)."""
    return bisect.bisect_left(originals, committed)


class Loader:
    """Members of a data archive applied in order to a running FerretDB and Kafka (empty)."""

    def __init__(self, settings: Settings, manifest: dict, bar=None):
        self.settings = settings
        self.manifest = manifest
        self.bar = bar
        self.mongo = connect(settings, "operator", timeout_ms=30000)
        self.producer = None
        self.new_offsets: dict[tuple[str, int], list[int]] = {}  # archived offsets, in their new order
        self.committed: dict[str, dict[TopicPartition, int]] = {}  # what each group was given

    def close(self) -> None:
        """Let go of the clients."""
        self.mongo.close()
        if self.producer is not None:
            self.producer.close()

    def __call__(self, name: str, data: bytes) -> None:
        """Apply one member."""
        parts = name.split("/")
        if parts[0] == "db" and len(parts) == 3 and parts[2].endswith(".indexes.json"):
            self._indexes(parts[1], parts[2][:-len(".indexes.json")], json.loads(data))
        elif parts[0] == "db" and len(parts) == 3 and parts[2].endswith(".bson"):
            self._documents(parts[1], parts[2][:-len(".bson")], data)
        elif parts[0] == "topics" and len(parts) == 3 and parts[2].endswith(".bson"):
            self._records(parts[1], int(parts[2][:-len(".bson")]), data)
        elif name == "groups.json":
            self._groups(json.loads(data))
        elif name == "settings.json":
            pass
        else:
            raise ArchiveError(f"unexpected member {name!r}")
        if self.bar is not None:
            self.bar.update(len(data))

    def _documents(self, db: str, coll: str, data: bytes) -> None:
        collection = self.mongo[db][coll]
        if coll not in self.mongo[db].list_collection_names():
            self.mongo[db].create_collection(coll)
        batch, size = [], 0
        for raw in split_bson(data):
            batch.append(RawBSONDocument(raw))
            size += len(raw)
            if size >= BATCH_BYTES or len(batch) >= 1000:
                collection.insert_many(batch, ordered=True)
                batch, size = [], 0
        if batch:
            collection.insert_many(batch, ordered=True)

    def _indexes(self, db: str, coll: str, specs: list[dict]) -> None:
        if specs:
            self.mongo[db][coll].create_indexes([IndexModel([tuple(k) for k in s["keys"]], **s["options"])
                                                 for s in specs])

    def _create_topics(self) -> None:
        admin = KafkaAdminClient(**client_options(self.settings, "admin"), client_id="nrw-restore",
                                 request_timeout_ms=30000, bootstrap_timeout_ms=30000)
        try:
            for topic, info in sorted(self.manifest["topics"].items()):
                try:
                    replicas = getattr(self.settings, "topic_replication", 1)  # a cluster's setting, where there is one
                    admin.create_topics([NewTopic(topic, info["partitions"], replicas)])
                except TopicAlreadyExistsError:
                    raise ArchiveError(f"the topic {topic} exists already: restore into an empty var/") from None
        finally:
            admin.close()
        ensure_topics(self.settings, timeout_s=60)  # the topics of this version missing from the archive, rights

    def _records(self, topic: str, partition: int, data: bytes) -> None:
        if self.producer is None:
            self._create_topics()
            self.producer = KafkaProducer(**client_options(self.settings, "admin"), client_id="nrw-restore",
                                          acks="all", enable_idempotence=True, linger_ms=5,
                                          max_request_size=16 << 20, bootstrap_timeout_ms=30000)
        originals = []
        for raw in split_bson(data):
            record = bson.decode(raw)
            originals.append(int(record["offset"]))
            self.producer.send(topic, value=record["value"], key=record["key"], partition=partition,
                               timestamp_ms=int(record["timestamp"]),
                               headers=[(name, value) for name, value in record["headers"]])
        self.producer.flush()
        self.new_offsets[(topic, partition)] = originals

    def _groups(self, groups: dict) -> None:
        for group, topics in sorted(groups.items()):
            offsets = {}
            for topic, partitions in topics.items():
                for partition, committed in partitions.items():
                    originals = self.new_offsets.get((topic, int(partition)))
                    if originals is None:
                        continue  # a topic not in the archive (not one of the system's)
                    offsets[TopicPartition(topic, int(partition))] = OffsetAndMetadata(
                        new_offset(originals, committed), "", -1)
            if offsets:
                consumer = KafkaConsumer(**client_options(self.settings, "admin"), group_id=group,
                                         enable_auto_commit=False, bootstrap_timeout_ms=30000)
                try:
                    consumer.assign(list(offsets))
                    consumer.commit(offsets)
                    self.committed[group] = {tp: meta.offset for tp, meta in offsets.items()}
                finally:
                    consumer.close(autocommit=False)

    def check(self) -> None:
        """Every topic's partitions end where the archive says they must (count of records), every
        group's offsets are those given, every collection holds the archive's count."""
        consumer = KafkaConsumer(**client_options(self.settings, "admin"), group_id=None, bootstrap_timeout_ms=30000)
        admin = KafkaAdminClient(**client_options(self.settings, "admin"), client_id="nrw-restore",
                                 request_timeout_ms=30000, bootstrap_timeout_ms=30000)
        try:
            for group, given in self.committed.items():
                held = admin.list_group_offsets({group: list(given)})[group]
                found = {tp: meta.offset for tp, meta in held.items()}
                if any(found.get(tp) != offset for tp, offset in given.items()):
                    raise ArchiveError(f"the consumer group {group} does not hold the offsets restored to it")
            for topic, info in self.manifest["topics"].items():
                partitions = [TopicPartition(topic, int(p)) for p in info["records"]]
                ends = consumer.end_offsets(partitions)
                for tp in partitions:
                    expected = info["records"][str(tp.partition)]["count"]
                    if ends[tp] != expected:
                        raise ArchiveError(f"{topic} partition {tp.partition} holds {ends[tp]} records after "
                                           f"the restore, {expected} expected")
        finally:
            admin.close()
            consumer.close()
        for db, collections in self.manifest["databases"].items():
            for coll, expected in collections.items():
                count = self.mongo[db][coll].count_documents({})
                if count != expected:
                    raise ArchiveError(f"{db}.{coll} holds {count} documents after the restore, {expected} expected")
