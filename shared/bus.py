"""Kafka plumbing: topics, the event producer, the transactional outbox and its relay, and the
idempotent consume loop with dead letters.

The outbox lives inside the document that records a change: the change and the events it emits
are ONE insert (`outbox` holds the events, and stays as the record of what was sent).

What is still to be sent is kept in `<collection>_outbox`: one small marker per document with
events, written just BEFORE the document and deleted once its events are on the broker. A
consumer publishes at once and deletes the marker; a web process hands the document to its
BackgroundPublisher and answers, and that publisher's threads send the events and delete the
marker once the broker has acknowledged them, having first leased the marker (`lease_until`) so
that the relay leaves it alone meanwhile. The relay publishes what a marker older than the
writer's own attempt, and not leased, still points to. A document with `outbox_previous` (a
version's previous version) goes out after that one: whoever publishes it first publishes the
previous ones still pending, so a case's events keep their order whichever process sends them.
An event is never lost and at worst published twice (a publish that timed out may have landed,
or two processes sent the same pending version), and consumers are idempotent, so twice is
harmless.
A marker whose document never arrived (the writer died or lost a race) is dropped after a while;
a document refused by the database takes its marker back. A document with `outbox_after`
({"collection", "_id"}) is one part of a larger write: its events wait until that document
exists, and the relay deletes the part if it still does not after MARKER_ORPHAN_AFTER (such a
part is marked even when it has no events of its own, so that the relay finds it).
Why markers rather than a flag on the document: FerretDB v1 on SQLite evaluates every filter but
a plain `_id` match by scanning the whole collection (so the relay would scan all history,
forever), and an update costs it about twice an insert or a delete.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import queue
import signal
import threading
import time
from typing import Callable, Iterable, NamedTuple

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import CommitFailedError, InvalidReplicationFactorError, KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from shared.config import Settings, all_topics, dead_letter_topic
from shared.kafka_auth import apply_rights, client_options
from shared.events import EventError, decode, encode, validate_event
from shared.mongo import is_server_internal, is_transient, utcnow

log = logging.getLogger(__name__)

DLQ_HEADER_PREFIX = "nrw.dlq."


# --- topics -------------------------------------------------------------------------------------


def ensure_topics(settings: Settings, topics: Iterable[str] | None = None, timeout_s: float = 60,
                  rights: bool = True) -> list[str]:
    """Logged in as the broker's admin: create any missing topic with the configured partition
    count, replication factor and min.insync.replicas (NRW_TOPIC_REPLICATION, dead letters too)
    and (unless told not to) set every principal's credentials and rights (shared/kafka_auth.py);
    return the topics created."""
    wanted = list(topics or all_topics())
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(**client_options(settings, "admin"), client_id="nrw-topics",
                                     request_timeout_ms=10000, bootstrap_timeout_ms=5000)
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        created = []
        for topic in missing:
            try:
                admin.create_topics(
                    {topic: {"num_partitions": settings.topic_partitions,
                             "replication_factor": settings.topic_replication,
                             "configs": {"min.insync.replicas": str(settings.topic_min_insync)}}},
                    wait_for_metadata=True,
                )
                created.append(topic)
            except TopicAlreadyExistsError:
                pass
            except InvalidReplicationFactorError:
                # A cluster whose brokers have not all registered yet: wait for them.
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
                missing.append(topic)
        if rights and settings.kafka_security_protocol.upper().startswith("SASL_"):
            apply_rights(settings, admin)
        return created
    finally:
        admin.close()


def wait_for_topics(settings: Settings, principal: str, topics: Iterable[str]) -> None:
    """Return once the broker shows this principal every one of the topics (they are made by the
    admin, `python -m shared.topics`); KafkaError while it does not, so a caller can wait."""
    consumer = KafkaConsumer(**client_options(settings, principal), group_id=None, bootstrap_timeout_ms=5000)
    try:
        visible = consumer.topics()
    finally:
        consumer.close()
    missing = sorted(set(topics) - set(visible))
    if missing:
        raise KafkaError(f"topics not there yet: {', '.join(missing)}")


def kafka_status(admin_holder: dict, settings: Settings, principal: str) -> str:
    """'ok' if the broker answers a metadata request, else a short reason. Reuses one admin client."""
    try:
        admin = admin_holder.get("admin")
        if admin is None:
            admin = KafkaAdminClient(**client_options(settings, principal), client_id="nrw-readyz",
                                     request_timeout_ms=2000, bootstrap_timeout_ms=2000)
            admin_holder["admin"] = admin
        admin.describe_cluster()
        return "ok"
    except Exception as exc:  # any failure means "not ready"; the reason is the class name only
        stale = admin_holder.pop("admin", None)
        if stale is not None:
            try:
                stale.close()
            except Exception:
                pass
        return f"unavailable: {type(exc).__name__}"


# --- producing ----------------------------------------------------------------------------------


class BrokerCoolingDown(KafkaError):
    """Publishing is paused for a moment after the broker failed."""


class Publisher:
    """An idempotent, acks=all Kafka producer for events, keyed by case_id. Built lazily, per process."""

    def __init__(self, settings: Settings, *, principal: str, client_id: str, max_block_ms: int = 1000,
                 cooldown_s: float = 0.0, delivery_timeout_ms: int = 30000):
        self._settings = settings
        self._delivery_timeout_ms = delivery_timeout_ms
        self._principal = principal
        self._client_id = client_id
        self._max_block_ms = max_block_ms
        self._cooldown_s = cooldown_s
        self._down_until = 0.0
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _get(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    **client_options(self._settings, self._principal),
                    client_id=self._client_id,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=2,
                    max_block_ms=self._max_block_ms,
                    # Without an explicit bound, kafka-python's bootstrap can wait far longer than
                    # max_block_ms for a broker that is down.
                    bootstrap_timeout_ms=max(self._max_block_ms, 1000),
                    request_timeout_ms=5000,
                    delivery_timeout_ms=self._delivery_timeout_ms,
                )
            return self._producer

    def publish(self, topic: str, events: list[dict], timeout_s: float = 5.0) -> None:
        """Send events in order and wait until the broker has them all; raise KafkaError otherwise.

        After a failure, a publisher with a cooldown fails at once for cooldown_s seconds: a web
        request then saves without waiting on a broker known to be down, and the relay sends later.
        """
        if time.monotonic() < self._down_until:
            raise BrokerCoolingDown("the broker failed moments ago; leaving the events to the relay")
        try:
            producer = self._get()
        except KafkaError:
            self._down_until = time.monotonic() + self._cooldown_s
            raise
        try:
            futures = [producer.send(topic, key=e["case_id"].encode("utf-8"), value=encode(e)) for e in events]
            deadline = time.monotonic() + timeout_s
            for future in futures:
                future.get(timeout=max(0.05, deadline - time.monotonic()))
        except KafkaError:
            # A producer that failed (broker gone, idempotence state lost) is replaced on the next
            # send; what it still held stays in the outbox, so dropping it loses nothing.
            self._discard(producer)
            self._down_until = time.monotonic() + self._cooldown_s
            raise

    def _discard(self, producer: KafkaProducer) -> None:
        with self._lock:
            if self._producer is producer:
                self._producer = None
        try:
            producer.close(timeout=0)
        except Exception:  # closing a broken producer may fail too; it is dropped either way
            pass

    def send_raw(self, topic: str, key: bytes | None, value: bytes | None, headers: list, timeout_s: float = 10.0) -> None:
        """Send bytes as they are (dead letters keep the original record untouched)."""
        self._get().send(topic, key=key, value=value, headers=headers).get(timeout=timeout_s)

    def close(self) -> None:
        """Flush and close the producer, if one was made."""
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


# --- the outbox ---------------------------------------------------------------------------------


MARKER_ORPHAN_AFTER = dt.timedelta(minutes=2)
# How long a writer's own publish may take. The relay leaves a document alone for at least this
# long plus a margin, so that it does not publish again what the writer is still publishing.
FAST_PATH_TIMEOUT_S = 2.0


def with_outbox(doc: dict, events: list[dict], now: dt.datetime | None = None) -> dict:
    """The document with its events in the outbox, to be stored in the same single write."""
    return {**doc, "outbox": list(events), "updated_at": now or utcnow()}


def _markers(collection: Collection) -> Collection:
    return collection.database[f"{collection.name}_outbox"]


def insert_with_outbox(collection: Collection, doc: dict) -> None:
    """Insert a document built by with_outbox (DuplicateKeyError if its _id exists), marking it
    for the relay first so that no pending event can be missed."""
    marked = False
    if doc.get("outbox") or doc.get("outbox_after"):  # a gated part is marked even without events
        try:
            _markers(collection).insert_one({"_id": doc["_id"], "at": doc["updated_at"]})
            marked = True
        except DuplicateKeyError:
            pass  # a racing writer of the same _id marked it; the relay checks the stored document
    try:
        collection.insert_one(doc)
    except DuplicateKeyError:
        raise  # the document that exists is the one the marker (now) points to
    except Exception:
        if marked:  # the document was refused (too large, invalid): no marker left behind for it
            _markers(collection).delete_one({"_id": doc["_id"]})
        raise


def pending_predecessors(collection: Collection, doc: dict, skip: frozenset | set = frozenset(),
                         limit: int = 20) -> list[dict]:
    """The documents this one follows (`outbox_previous`) whose events are still pending, oldest
    first; `skip`: _ids already on their way from this process (its producer keeps their order)."""
    chain: list[dict] = []
    previous = doc.get("outbox_previous")
    while previous and previous not in skip and len(chain) < limit:
        if _markers(collection).find_one({"_id": previous}, {"_id": 1}) is None:
            break
        earlier = collection.find_one({"_id": previous})
        if earlier is None:
            break
        chain.append(earlier)
        previous = earlier.get("outbox_previous")
    return chain[::-1]


def _unmark(collection: Collection, doc_id) -> bool:
    """Delete a marker whose events are on the broker; a database that stopped answering leaves it
    (False: the relay then sends the events once more, which consumers absorb)."""
    try:
        _markers(collection).delete_one({"_id": doc_id})
        return True
    except Exception as exc:
        if not (is_transient(exc) or is_server_internal(exc)):
            raise
        log.warning("outbox: marker of %s kept (database unavailable: %s); the relay will send its events again",
                    doc_id, type(exc).__name__)
        return False


def _log_published(events: list[dict]) -> None:
    for event in events:
        log.info("published %s %s case=%s", event["event_id"], event["event_type"], event["case_id"])


def publish_outbox(collection: Collection, doc: dict, topic: str, publisher: Publisher,
                   timeout_s: float = FAST_PATH_TIMEOUT_S) -> bool:
    """Publish a freshly stored document's events (after any earlier version still pending), then
    delete its outbox marker.

    Returns True when the events reached the broker, or, for a BackgroundPublisher (a web
    process's), when the document was handed to it: the caller does not wait for the broker. Never
    raises for a broker that is down: the marker stays and the relay sends them later. Nor for a
    database that stops answering once the events are out: the document is stored and its events
    sent, so the write has succeeded; the marker left behind only makes the relay send them once
    more, which consumers absorb.
    """
    if isinstance(publisher, BackgroundPublisher):
        return publisher.submit(collection, doc, topic)
    events = doc.get("outbox") or []
    earlier = pending_predecessors(collection, doc) if events else []
    if events:
        before = [e for d in earlier for e in d.get("outbox") or []]
        try:
            publisher.publish(topic, before + events, timeout_s=timeout_s)
        except KafkaError as exc:
            log.warning("outbox: %d event(s) of %s kept for the relay (%s); first event %s %s",
                        len(events), doc["_id"], type(exc).__name__, events[0]["event_id"], events[0]["event_type"])
            return False
        _log_published(before + events)
    for done in earlier + [doc]:
        _unmark(collection, done["_id"])
    return True


# How long a background publisher may still be delivering a document it took: kafka-python's
# delivery timeout, then the lease on the marker (the relay leaves a leased marker alone).
BACKGROUND_DELIVERY_TIMEOUT_MS = 30000
BACKGROUND_LEASE = dt.timedelta(seconds=45)
EXIT_DRAIN_S = 5.0  # within gunicorn's graceful_timeout (infra/gunicorn.conf.py)


class BackgroundPublisher(Publisher):
    """A web process's publisher: a request stores its document with its outbox and answers;
    publish_outbox only queues the document here (never blocking: a full queue leaves it to the
    relay). One thread sends each document's events with kafka-python's asynchronous send (the
    producer's metadata fetch and max_block happen there, never on a request), after any earlier
    version still pending, and leases the marker; a second waits for the acknowledgements in order
    and deletes a marker only once every event of its document is acknowledged. A document not
    acknowledged (the broker away longer than the delivery timeout) keeps its marker: the relay
    sends it when the lease ends. A process that stops or dies leaves its markers to the relay too.
    One producer, idempotent, sends in queue order, so a case's events keep their order.
    """

    def __init__(self, settings: Settings, *, principal: str, client_id: str, capacity: int = 10000,
                 cooldown_s: float = 5.0, lease: dt.timedelta = BACKGROUND_LEASE):
        super().__init__(settings, principal=principal, client_id=client_id, max_block_ms=5000,
                         cooldown_s=cooldown_s, delivery_timeout_ms=BACKGROUND_DELIVERY_TIMEOUT_MS)
        self._lease = lease
        self._todo: queue.Queue = queue.Queue(capacity)
        self._sent: queue.Queue = queue.Queue()
        # _id -> its place in the queue, for those queued or sent, not yet acknowledged or given up
        self._in_flight: dict = {}
        self._handed = 0
        self._idle = threading.Condition()
        self._busy = 0
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._unmark_later: list[tuple[Collection, object]] = []  # confirm thread only

    def submit(self, collection: Collection, doc: dict, topic: str) -> bool:
        """Queue a stored document's events and return at once; False (left to the relay) when full."""
        self._start()
        with self._idle:
            self._busy += 1
            self._handed += 1
            self._in_flight[doc["_id"]] = self._handed
        try:
            self._todo.put_nowait((collection, doc, topic))
        except queue.Full:
            self._finished(doc["_id"])
            log.warning("outbox: background queue full; %s left to the relay", doc["_id"])
            return False
        return True

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until everything submitted is acknowledged or given up (True), or timeout_s passed."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout=timeout_s)

    def _start(self) -> None:
        if self._threads:
            return
        with self._start_lock:  # not the producer's lock: making a producer may wait for the broker
            if self._threads:
                return
            for target, name in ((self._send_loop, "outbox-send"), (self._confirm_loop, "outbox-confirm")):
                thread = threading.Thread(target=target, name=f"{self._client_id}-{name}", daemon=True)
                thread.start()
                self._threads.append(thread)
            atexit.register(self._drain, EXIT_DRAIN_S)

    def _drain(self, timeout_s: float) -> None:
        """At the process's exit (gunicorn stopping a worker): a few seconds to deliver what is in
        flight; whatever is left keeps its marker for the relay."""
        if not self.wait_idle(timeout_s):
            log.warning("outbox: stopping with events undelivered; the relay sends them once their lease ends")

    def _finished(self, doc_id) -> None:
        with self._idle:
            self._in_flight.pop(doc_id, None)
            self._busy -= 1
            self._idle.notify_all()

    def _send_loop(self) -> None:
        while True:
            collection, doc, topic = self._todo.get()
            try:
                sent = self._send(collection, doc, topic)
            except Exception:  # never let the thread die: the marker stays for the relay
                log.exception("outbox: background send of %s failed; left to the relay", doc["_id"])
                sent = None
            if sent is None:
                self._finished(doc["_id"])
            else:
                self._sent.put(sent)

    def _send(self, collection: Collection, doc: dict, topic: str):
        events = doc.get("outbox") or []
        if not events:
            _unmark(collection, doc["_id"])
            return None
        if time.monotonic() < self._down_until:
            log.warning("outbox: broker failed moments ago; %d event(s) of %s left to the relay",
                        len(events), doc["_id"])
            return None
        with self._idle:  # only what was queued before this document is sent before it by this producer:
            # a version handed over late (its request thread paused after storing it, while the next
            # version was stored and handed over) is behind this one, and is sent here first
            place = self._in_flight.get(doc["_id"], 0)
            mine = {doc_id for doc_id, at in self._in_flight.items() if at < place}
        earlier = pending_predecessors(collection, doc, skip=mine)
        try:
            producer = self._get()
            futures = [producer.send(topic, key=e["case_id"].encode("utf-8"), value=encode(e))
                       for d in earlier + [doc] for e in d.get("outbox") or []]
        except KafkaError as exc:
            self._down_until = time.monotonic() + self._cooldown_s
            log.warning("outbox: %d event(s) of %s left to the relay (%s); first event %s %s", len(events),
                        doc["_id"], type(exc).__name__, events[0]["event_id"], events[0]["event_type"])
            return None
        try:  # the relay leaves a leased marker alone while this process delivers it
            _markers(collection).update_one({"_id": doc["_id"]}, {"$set": {"lease_until": utcnow() + self._lease}})
        except Exception as exc:
            if not (is_transient(exc) or is_server_internal(exc)):
                raise
        return collection, doc, earlier, producer, futures

    def _confirm_loop(self) -> None:
        while True:
            try:
                collection, doc, earlier, producer, futures = self._sent.get(timeout=1.0)
            except queue.Empty:
                self._unmark_again()
                continue
            try:
                self._confirm(collection, doc, earlier, producer, futures)
            except Exception:  # the marker stays for the relay
                log.exception("outbox: confirming %s failed; left to the relay", doc["_id"])
            finally:
                self._finished(doc["_id"])

    def _confirm(self, collection: Collection, doc: dict, earlier: list[dict], producer, futures) -> None:
        deadline = time.monotonic() + BACKGROUND_DELIVERY_TIMEOUT_MS / 1000 + 5
        try:
            for future in futures:
                future.get(timeout=max(0.05, deadline - time.monotonic()))
        except KafkaError as exc:
            self._discard(producer)
            self._down_until = time.monotonic() + self._cooldown_s
            events = doc["outbox"]
            log.warning("outbox: %d event(s) of %s kept for the relay (%s); first event %s %s", len(events),
                        doc["_id"], type(exc).__name__, events[0]["event_id"], events[0]["event_type"])
            return
        _log_published([e for d in earlier + [doc] for e in d.get("outbox") or []])
        for done in earlier + [doc]:
            if not _unmark(collection, done["_id"]):
                self._unmark_later.append((collection, done["_id"]))

    def _unmark_again(self) -> None:
        """Markers of delivered events that the database did not delete (it was away): deleted once
        it answers, so that the relay, once their lease ends, does not send them again."""
        while self._unmark_later:
            collection, doc_id = self._unmark_later[0]
            if not _unmark(collection, doc_id):
                return
            self._unmark_later.pop(0)


def outbox_pending(collection: Collection, doc_id) -> bool:
    """True while a document's events are not known to be on the broker."""
    return _markers(collection).find_one({"_id": doc_id}, {"_id": 1}) is not None


def relay_once(collections: list[Collection], topic: str, publisher: Publisher, *, grace_s: float, limit: int = 500) -> int:
    """One sweep: publish events left pending for longer than grace_s. Returns documents relayed."""
    now = utcnow()
    cutoff = now - dt.timedelta(seconds=max(grace_s, FAST_PATH_TIMEOUT_S + 1.0))
    relayed = 0
    for collection in collections:
        for marker in _markers(collection).find().sort("at", 1).limit(limit):
            if marker["at"] > cutoff or marker.get("lease_until", now) > now:
                continue  # the writer's own fast path, or its background publisher, is probably still at it
            doc = collection.find_one({"_id": marker["_id"]})
            if doc is None:
                if marker["at"] < now - MARKER_ORPHAN_AFTER:
                    _markers(collection).delete_one({"_id": marker["_id"]})
                continue
            gate = doc.get("outbox_after")
            if gate and collection.database[gate["collection"]].find_one({"_id": gate["_id"]}, {"_id": 1}) is None:
                # Part of a larger write whose main document is not there (yet): never published;
                # once the writer cannot still be at it, deleted with its marker (a failed attempt).
                if marker["at"] < now - MARKER_ORPHAN_AFTER:
                    collection.delete_one({"_id": doc["_id"]})
                    _markers(collection).delete_one({"_id": marker["_id"]})
                continue
            if not publish_outbox(collection, doc, topic, publisher):
                return relayed
            relayed += 1
    return relayed


def run_relay(collections: list[Collection], topic: str, publisher: Publisher, settings: Settings,
              stop: threading.Event) -> None:
    """Sweep the outbox until stopped; the database or broker being down only delays it."""
    log.info("relay: sweeping %s into %s", ", ".join(c.full_name for c in collections), topic)
    while not stop.is_set():
        try:
            relayed = relay_once(collections, topic, publisher, grace_s=settings.relay_grace_seconds)
        except Exception as exc:
            if not is_transient(exc):
                log.exception("relay: unexpected error")
            else:
                log.warning("relay: database unavailable (%s); retrying", type(exc).__name__)
            relayed = 0
        if relayed:
            log.info("relay: published the outbox of %d document(s)", relayed)
        else:
            stop.wait(settings.relay_interval_seconds)


# --- consuming ----------------------------------------------------------------------------------


class RetryLater(Exception):
    """A handler cannot apply an event yet (a dependency is down); the record will be retried."""


Handler = Callable[[dict], None]


class Batch(NamedTuple):
    """What a batch handler is told beside a poll's events: the partition numbers they came from;
    how many times this consumer's partitions were handed out again (a new number: each of them
    may have been another instance's meanwhile); and whether every topic it reads has one
    partition count, so that a partition number holds the same keys (case ids) in every topic and
    range assignment gives all of a case's events to one instance."""
    partitions: frozenset
    rebalances: int
    copartitioned: bool


class _Assignments(ConsumerRebalanceListener):
    """Counts the group's hand-outs of partitions to this consumer, and checks co-partitioning."""

    def __init__(self, owner: "EventConsumer", consumer: KafkaConsumer):
        self.owner, self.consumer = owner, consumer

    def on_partitions_revoked(self, revoked) -> None:
        self.owner.rebalances += 1

    def on_partitions_assigned(self, assigned) -> None:
        self.owner.rebalances += 1
        self.owner.copartitioned = False  # until the counts are known
        counts = {len(self.consumer.partitions_for_topic(topic) or ()) for topic in self.owner.topics}
        self.owner.copartitioned = len(counts) == 1 and 0 not in counts


class EventConsumer:
    """Consume topics in a group; apply each event once; dead-letter what cannot be applied.

    Offsets are committed only after the effect of every record up to them is stored. A handler
    must make its effect and its record of the applied event_id one write (see `applied`).
    """

    # How many times a record whose handler met a database internal error is tried before it is
    # dead-lettered (a database shutting down answers so for a moment; a bug would forever).
    MAX_INTERNAL_ERROR_ATTEMPTS = 10

    def __init__(self, settings: Settings, *, principal: str, group_id: str, topics: list[str],
                 handlers: dict[str, Handler], publisher: Publisher, max_poll_records: int = 100,
                 retry_backoff_s: float = 1.0, batch_handler: Callable[[list[dict], Batch], None] | None = None):
        self.settings = settings
        # Given, each poll's events go to it at once (one read and one write for many events),
        # with the Batch they came in; `handlers` still say which event types are taken, and apply
        # them one by one when a batch fails for a reason other than the database being away (to
        # find the event at fault).
        self.batch_handler = batch_handler
        self.rebalances = 0
        self.copartitioned = False
        self.principal = principal
        self.group_id = group_id
        self.topics = topics
        self.handlers = handlers
        self.publisher = publisher
        self.max_poll_records = max_poll_records
        self.retry_backoff_s = retry_backoff_s
        self.stop = threading.Event()
        self._internal_errors: dict[tuple[str, int, int], int] = {}

    def _connect(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            **client_options(self.settings, self.principal),
            group_id=self.group_id,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.max_poll_records,
            # Partitions by number, topic by topic: with several instances in a group, each gets the
            # same partition numbers of every topic it reads. The topics have one partition count
            # and the case id as key, so all of a case's events (intake's, case's, advocacy's) go to
            # one instance at a time (reporting's record of a case has then one writer, which the
            # fences of its partitions confirm; where they do not, it checks each record's rev:
            # services/reporting/store.py, PartitionFence). _Assignments tells the batch handler
            # when partitions were handed out again and whether the topics are co-partitioned.
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=10000,
            heartbeat_interval_ms=3000,
            bootstrap_timeout_ms=5000,
        )
        consumer.subscribe(self.topics, listener=_Assignments(self, consumer))
        return consumer

    def run(self) -> None:
        """Poll and apply until stop is set. Broker trouble is waited out; anything unexpected
        closes the consumer and starts it again from the last committed offsets, so one bad
        moment never ends the process (and with it, under honcho, the whole stack)."""
        while not self.stop.is_set():
            try:
                consumer = self._connect()
            except KafkaError as exc:
                log.warning("consumer %s: broker unavailable (%s); retrying", self.group_id, type(exc).__name__)
                self.stop.wait(2)
                continue
            log.info("consumer %s: reading %s", self.group_id, ", ".join(self.topics))
            try:
                self._poll_until_stopped(consumer)
            except Exception:
                log.exception("consumer %s: unexpected error; reconnecting", self.group_id)
                self.stop.wait(2)
            finally:
                try:
                    consumer.close(autocommit=False)
                except Exception:  # the consumer may be broken; it is dropped either way
                    pass

    def _poll_until_stopped(self, consumer: KafkaConsumer) -> None:
        while not self.stop.is_set():
            try:
                batch = consumer.poll(timeout_ms=500)
                if self.batch_handler is not None and batch:
                    self._apply_batch(consumer, batch)
                    continue
                for tp, records in batch.items():
                    self._apply_partition(consumer, tp, records)
            except CommitFailedError as exc:
                # The group rebalanced (e.g. the broker restarted): what was applied since the
                # last commit will be delivered again, and applying it again changes nothing.
                log.warning("consumer %s: offsets not committed (%s); rejoining the group", self.group_id,
                            type(exc).__name__)
            except KafkaError as exc:
                log.warning("consumer %s: broker error (%s); retrying", self.group_id, type(exc).__name__)
                self.stop.wait(self.retry_backoff_s)

    def _apply_partition(self, consumer: KafkaConsumer, tp: TopicPartition, records: list) -> None:
        done = None
        for record in records:
            try:
                self.apply(record)
            except RetryLater as exc:
                log.warning("consumer %s: %s-%d@%d will be retried: %s", self.group_id, tp.topic, tp.partition,
                            record.offset, exc)
                consumer.seek(tp, record.offset)
                self._commit(consumer, tp, done)
                self.stop.wait(self.retry_backoff_s)
                return
            done = record.offset
        self._commit(consumer, tp, done)

    def _apply_batch(self, consumer: KafkaConsumer, batch: dict) -> None:
        """A whole poll at once: the valid events of every partition (each partition's in order) to
        the batch handler, then the unreadable records to the dead letters, then one commit. The
        database away: every partition goes back to the batch's start and is tried again. Any
        other failure: the batch is applied record by record, so that only what is at fault is
        dead-lettered."""
        events, unreadable = [], []
        for records in batch.values():
            for record in records:
                try:
                    event = validate_event(decode(record.value))
                except EventError as exc:
                    unreadable.append((record, exc.reason))
                    continue
                if event["event_type"] in self.handlers:
                    events.append(event)
        try:
            if events:
                self.batch_handler(events, Batch(frozenset(tp.partition for tp in batch), self.rebalances,
                                                 self.copartitioned))
            for record, reason in unreadable:
                self.dead_letter(record, reason)
        except Exception as exc:
            if not isinstance(exc, RetryLater) and not is_transient(exc):
                log.warning("consumer %s: a batch of %d events failed (%s); applying them one by one",
                            self.group_id, len(events), type(exc).__name__)
                for tp, records in batch.items():
                    self._apply_partition(consumer, tp, records)
                return
            log.warning("consumer %s: batch of %d events will be retried: %s", self.group_id, len(events),
                        exc if isinstance(exc, RetryLater) else type(exc).__name__)
            for tp, records in batch.items():
                consumer.seek(tp, records[0].offset)
            self.stop.wait(self.retry_backoff_s)
            return
        consumer.commit({tp: OffsetAndMetadata(records[-1].offset + 1, "", -1) for tp, records in batch.items()})
        log.info("consumer %s: applied a batch of %d events", self.group_id, len(events))

    def _commit(self, consumer: KafkaConsumer, tp: TopicPartition, last_offset: int | None) -> None:
        if last_offset is None:
            return
        consumer.commit({tp: OffsetAndMetadata(last_offset + 1, "", -1)})

    def apply(self, record) -> None:
        """Apply one record: validate, hand to its handler, or dead-letter it with the reason."""
        try:
            event = validate_event(decode(record.value))
        except EventError as exc:
            self.dead_letter(record, exc.reason)
            return
        handler = self.handlers.get(event["event_type"])
        if handler is None:
            return  # an event type this service does not act on
        where = (record.topic, record.partition, record.offset)
        try:
            handler(event)
        except RetryLater:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise RetryLater(f"database unavailable ({type(exc).__name__})") from exc
            if is_server_internal(exc):
                attempts = self._internal_errors[where] = self._internal_errors.get(where, 0) + 1
                if attempts < self.MAX_INTERNAL_ERROR_ATTEMPTS:
                    raise RetryLater(f"database internal error, attempt {attempts} "
                                     f"of {self.MAX_INTERNAL_ERROR_ATTEMPTS}") from exc
            self._internal_errors.pop(where, None)
            log.exception("consumer %s: handler failed for %s %s", self.group_id, event["event_id"], event["event_type"])
            self.dead_letter(record, f"handler failed: {type(exc).__name__}")
            return
        self._internal_errors.pop(where, None)
        log.info("applied %s %s case=%s", event["event_id"], event["event_type"], event["case_id"])

    def dead_letter(self, record, reason: str) -> None:
        """Send the original record to <topic>.dlq with the reason and where it came from."""
        headers = [
            (DLQ_HEADER_PREFIX + "reason", reason.encode("utf-8")),
            (DLQ_HEADER_PREFIX + "source.topic", record.topic.encode()),
            (DLQ_HEADER_PREFIX + "source.partition", str(record.partition).encode()),
            (DLQ_HEADER_PREFIX + "source.offset", str(record.offset).encode()),
            (DLQ_HEADER_PREFIX + "consumer.group", self.group_id.encode()),
            (DLQ_HEADER_PREFIX + "failed_at", utcnow().isoformat().encode()),
        ]
        try:
            self.publisher.send_raw(dead_letter_topic(record.topic), record.key, record.value, headers)
        except KafkaError as exc:
            raise RetryLater(f"dead-letter topic unavailable ({type(exc).__name__})") from exc
        log.warning("dead-lettered %s-%d@%d: %s", record.topic, record.partition, record.offset, reason)


def applied(doc: dict | None, event_id: str) -> bool:
    """True if the document already records having applied this event."""
    return bool(doc) and event_id in doc.get("applied_event_ids", [])


def mark_applied(doc: dict, event_id: str) -> dict:
    """The document with the event recorded as applied (stored in the same write as the effect)."""
    doc = dict(doc)
    doc["applied_event_ids"] = list(doc.get("applied_event_ids", [])) + [event_id]
    return doc


def stop_on_signals(stop: threading.Event) -> None:
    """Set `stop` on SIGTERM or SIGINT, so a loop can finish its record and close cleanly."""
    def _handler(signum, _frame):
        log.info("stopping on signal %d", signum)
        stop.set()
    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
