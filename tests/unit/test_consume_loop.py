"""The consume loop's decisions, with a fake publisher (no broker): apply, skip, dead-letter, retry."""

from collections import namedtuple

import pytest
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from shared.bus import EventConsumer, RetryLater, applied, mark_applied, with_outbox
from shared.config import Settings
from shared.events import encode, new_event

Record = namedtuple("Record", "topic partition offset key value")


class FakePublisher:
    def __init__(self):
        self.sent = []

    def send_raw(self, topic, key, value, headers, timeout_s=10.0):
        self.sent.append((topic, key, value, dict(headers)))


def _consumer(handlers):
    publisher = FakePublisher()
    return EventConsumer(Settings(), principal="admin", group_id="g", topics=["intake.events"], handlers=handlers,
                         publisher=publisher), publisher


def _event():
    return new_event("case.merged", producer="intake", case_id="c-1", payload={"into_case_id": "c-2"})


def test_a_valid_event_reaches_its_handler():
    seen = []
    consumer, publisher = _consumer({"case.merged": seen.append})
    event = _event()
    consumer.apply(Record("intake.events", 0, 5, b"c-1", encode(event)))
    assert [e["event_id"] for e in seen] == [event["event_id"]] and publisher.sent == []


@pytest.mark.parametrize("value, reason", [
    (b"{oops", "not JSON"),
    (b'{"event_type": "case.merged"}', "envelope invalid"),
])
def test_poison_goes_to_the_dead_letter_topic_with_reason_and_origin(value, reason):
    consumer, publisher = _consumer({})
    consumer.apply(Record("intake.events", 2, 41, b"c-9", value))
    [(topic, key, original, headers)] = publisher.sent
    assert topic == "intake.events.dlq" and key == b"c-9" and original == value
    assert reason in headers["nrw.dlq.reason"].decode()
    assert headers["nrw.dlq.source.topic"] == b"intake.events"
    assert headers["nrw.dlq.source.partition"] == b"2" and headers["nrw.dlq.source.offset"] == b"41"


def test_an_event_type_without_a_handler_is_skipped_not_dead_lettered():
    consumer, publisher = _consumer({})
    consumer.apply(Record("intake.events", 0, 1, b"c-1", encode(_event())))
    assert publisher.sent == []


def test_a_handler_bug_dead_letters_the_event():
    def broken(_event):
        raise ValueError("bug")
    consumer, publisher = _consumer({"case.merged": broken})
    consumer.apply(Record("intake.events", 0, 1, b"c-1", encode(_event())))
    assert publisher.sent[0][3]["nrw.dlq.reason"] == b"handler failed: ValueError"


def test_a_database_outage_is_retried_not_dead_lettered():
    def db_down(_event):
        raise ServerSelectionTimeoutError("no servers")
    consumer, publisher = _consumer({"case.merged": db_down})
    with pytest.raises(RetryLater):
        consumer.apply(Record("intake.events", 0, 1, b"c-1", encode(_event())))
    assert publisher.sent == []


def test_a_database_shutting_down_is_retried_for_as_long_as_it_takes():
    def shutting_down(_event):
        raise OperationFailure("interrupted at shutdown", code=11600)
    consumer, publisher = _consumer({"case.merged": shutting_down})
    record = Record("intake.events", 0, 1, b"c-1", encode(_event()))
    for _ in range(3 * EventConsumer.MAX_INTERNAL_ERROR_ATTEMPTS):
        with pytest.raises(RetryLater):
            consumer.apply(record)
    assert publisher.sent == []


def test_a_database_internal_error_is_retried_a_few_times_then_dead_lettered():
    """FerretDB answers InternalError while it shuts down (passing) or for a bug (forever)."""
    calls = []

    def internal_error(event):
        calls.append(event["event_id"])
        raise OperationFailure("sql: transaction has already been committed or rolled back", code=1)
    consumer, publisher = _consumer({"case.merged": internal_error})
    record = Record("intake.events", 0, 1, b"c-1", encode(_event()))
    for _ in range(EventConsumer.MAX_INTERNAL_ERROR_ATTEMPTS - 1):
        with pytest.raises(RetryLater, match="internal error"):
            consumer.apply(record)
    assert publisher.sent == []
    consumer.apply(record)
    assert [h["nrw.dlq.reason"] for *_, h in publisher.sent] == [b"handler failed: OperationFailure"]
    assert len(calls) == EventConsumer.MAX_INTERNAL_ERROR_ATTEMPTS


def test_an_internal_error_that_passes_leaves_no_count_behind():
    failures = [OperationFailure("busy", code=1)] * (EventConsumer.MAX_INTERNAL_ERROR_ATTEMPTS - 1)
    seen = []

    def flaky(event):
        if failures:
            raise failures.pop()
        seen.append(event["event_id"])
    consumer, publisher = _consumer({"case.merged": flaky})
    record = Record("intake.events", 0, 1, b"c-1", encode(_event()))
    for _ in range(EventConsumer.MAX_INTERNAL_ERROR_ATTEMPTS - 1):
        with pytest.raises(RetryLater):
            consumer.apply(record)
    consumer.apply(record)
    assert len(seen) == 1 and publisher.sent == [] and consumer._internal_errors == {}


def test_applied_events_and_the_outbox_are_part_of_the_same_document():
    doc = {"_id": "c-1", "status": "reported"}
    event = _event()
    new = mark_applied(with_outbox(doc, [event]), event["event_id"])
    assert applied(new, event["event_id"]) and not applied(doc, event["event_id"])
    assert new["outbox"] == [event] and new["status"] == "reported"
    assert with_outbox(doc, [])["outbox"] == []


class FlakyKafkaConsumer:
    """poll() fails the way kafka-python does around a broker restart, then stops the loop."""

    def __init__(self, consumer, errors):
        self.owner = consumer
        self.errors = list(errors)
        self.polls = 0

    def poll(self, timeout_ms):
        self.polls += 1
        if self.errors:
            raise self.errors.pop(0)
        self.owner.stop.set()
        return {}


def test_a_rebalance_or_broker_error_does_not_end_the_consume_loop():
    from kafka.errors import CommitFailedError, KafkaConnectionError

    consumer, _ = _consumer({})
    consumer.retry_backoff_s = 0
    flaky = FlakyKafkaConsumer(consumer, [CommitFailedError("UnknownMemberIdError"), KafkaConnectionError()])
    consumer._poll_until_stopped(flaky)
    assert flaky.polls == 3 and consumer.stop.is_set()


def test_an_unexpected_error_restarts_the_consumer_instead_of_the_process(monkeypatch):
    consumer, _ = _consumer({})
    made = []

    class Broken:
        def poll(self, timeout_ms):
            if len(made) == 1:
                raise RuntimeError("unexpected")
            consumer.stop.set()
            return {}

        def close(self, autocommit):
            pass

    def connect():
        made.append(Broken())
        return made[-1]

    monkeypatch.setattr(consumer, "_connect", connect)
    monkeypatch.setattr(consumer.stop, "wait", lambda _s: None)
    consumer.run()
    assert len(made) == 2


def test_a_web_publisher_stops_waiting_on_a_broker_that_just_failed(monkeypatch):
    from kafka.errors import KafkaTimeoutError

    from shared.bus import BrokerCoolingDown, Publisher

    publisher = Publisher(Settings(), principal="admin", client_id="unit", cooldown_s=60)
    attempts = []

    def unreachable():
        attempts.append(1)
        raise KafkaTimeoutError("bootstrap")

    monkeypatch.setattr(publisher, "_get", unreachable)
    event = _event()
    with pytest.raises(KafkaTimeoutError):
        publisher.publish("intake.events", [event])
    with pytest.raises(BrokerCoolingDown):
        publisher.publish("intake.events", [event])
    assert len(attempts) == 1  # the second save did not wait on the broker again
    publisher._down_until = 0
    with pytest.raises(KafkaTimeoutError):
        publisher.publish("intake.events", [event])
    assert len(attempts) == 2


class _Markers:
    """An outbox marker collection whose database stops answering at the delete."""

    def __init__(self, error):
        self.error = error

    def delete_one(self, _filter):
        raise self.error


class _Collection:
    name = "reports"

    def __init__(self, error):
        self.database = {"reports_outbox": _Markers(error)}


class _BrokerPublisher:
    def __init__(self):
        self.published = []

    def publish(self, topic, events, timeout_s=5.0):
        self.published.append((topic, [e["event_id"] for e in events]))


def test_a_write_whose_events_are_out_succeeds_even_if_the_database_then_stops_answering():
    from shared.bus import publish_outbox

    publisher, event = _BrokerPublisher(), _event()
    doc = with_outbox({"_id": "r-1"}, [event])
    assert publish_outbox(_Collection(ServerSelectionTimeoutError("down")), doc, "intake.events", publisher) is True
    assert publish_outbox(_Collection(OperationFailure("cut off", code=1)), doc, "intake.events", publisher) is True
    assert publisher.published == [("intake.events", [event["event_id"]])] * 2
    with pytest.raises(ValueError):  # anything but the database being away is still an error
        publish_outbox(_Collection(ValueError("bug")), doc, "intake.events", publisher)
