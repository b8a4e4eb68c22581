"""The dead-letter tool's rules without a broker: which dead letters are outstanding, which may be
replayed, and that a listing never shows a record's contents."""

from __future__ import annotations

from collections import namedtuple

import pytest

from shared.deadletters import REPLAYED_AT, REPLAYED_OF, collect, parse_coordinate, select, send_back, table
from shared.events import encode, new_event
from tests.support import SYNTH

Record = namedtuple("Record", "topic partition offset key value headers")


def _event() -> bytes:
    return encode(new_event("case.status_changed", producer="case", case_id="0b0e8a3c-1a3e-4c7e-9d4f-7f3f2c1b5a60",
                            payload={"from": "reported", "to": "detained", "effective_on": "2023-04-20"}))


def _dead(offset: int, value: bytes, group: str = "case", source_offset: int = 7, reason: str = "handler failed: X",
          partition: int = 0) -> Record:
    headers = [(f"nrw.dlq.{k}", v.encode()) for k, v in {
        "reason": reason, "source.topic": "case.events", "source.partition": str(partition),
        "source.offset": str(source_offset), "consumer.group": group,
        "failed_at": f"2026-11-28T01:0{offset}:00+00:00"}.items()]
    return Record("case.events.dlq", partition, offset, b"k", value, headers)


def _mark(of: str, at: str = "2026-11-28T02:00:00+00:00", offset: int = 99) -> Record:
    return Record("case.events.dlq", 0, offset, b"k", b"{}", [(REPLAYED_OF, of.encode()), (REPLAYED_AT, at.encode())])


@pytest.fixture(scope="module")
def event() -> bytes:
    return _event()


def test_a_dead_letter_is_named_by_its_topic_partition_and_offset():
    assert parse_coordinate("intake.events.dlq:2@40") == ("intake.events.dlq", 2, 40)
    for bad in ("intake.events:2@40", "intake.events.dlq:2", "intake.events.dlq:x@1", ""):
        with pytest.raises(ValueError, match="expected <topic>.dlq:<partition>@<offset>"):
            parse_coordinate(bad)


def test_replay_marks_make_a_dead_letter_replayed_and_outstanding_ones_come_first(event):
    letters = collect([_dead(1, event), _dead(2, event, source_offset=8), _mark("case.events.dlq:0@1")])
    assert [(d.coordinate, d.replays) for d in letters] == [
        ("case.events.dlq:0@2", []), ("case.events.dlq:0@1", ["2026-11-28T02:00:00+00:00"])]


def test_all_replays_what_is_outstanding_and_valid_and_refuses_what_would_only_come_back(event):
    letters = collect([_dead(1, event), _dead(2, b"\x00not json", source_offset=8), _dead(3, event, source_offset=9),
                       _mark("case.events.dlq:0@3")])
    replay, refused = select(letters)
    assert [d.coordinate for d in replay] == ["case.events.dlq:0@1"]
    assert [(d.coordinate, reason.split(" (")[0]) for d, reason in refused] == [
        ("case.events.dlq:0@2", "still invalid: record value is not JSON")]


def test_a_named_dead_letter_replayed_before_needs_again(event):
    letters = collect([_dead(1, event), _mark("case.events.dlq:0@1")])
    replay, refused = select(letters, coordinates=["case.events.dlq:0@1", "case.events.dlq:0@5"])
    assert replay == []
    assert [(getattr(w, "coordinate", w), r.split(" at ")[0]) for w, r in refused] == [
        ("case.events.dlq:0@5", "no such dead letter"), ("case.events.dlq:0@1", "already replayed")]
    replay, refused = select(letters, coordinates=["case.events.dlq:0@1"], again=True)
    assert [d.coordinate for d in replay] == ["case.events.dlq:0@1"] and refused == []


class FakeProducer:
    def __init__(self):
        self.sent = []

    def send(self, topic, key, value, headers):
        self.sent.append((topic, dict(headers)))
        return self

    def get(self, timeout):
        return None


def test_one_record_given_up_by_two_groups_goes_back_once_and_both_are_marked(event):
    letters = collect([_dead(1, event, group="case"), _dead(2, event, group="reporting"),
                       _dead(3, event, group="case", source_offset=9)])
    assert [d.coordinate for d in select(letters)[0]] == ["case.events.dlq:0@1", "case.events.dlq:0@3"]
    replay = select(letters, group="reporting")[0]
    assert [d.group for d in replay] == ["reporting"]
    producer = FakeProducer()
    marked = send_back(None, replay, letters, producer=producer)
    assert [d.coordinate for d in marked] == ["case.events.dlq:0@1", "case.events.dlq:0@2"]
    assert [topic for topic, _ in producer.sent] == ["case.events", "case.events.dlq", "case.events.dlq"]
    assert producer.sent[0][1] == {"nrw.replay.of": b"case.events.dlq:0@2"}
    assert [h[REPLAYED_OF] for _, h in producer.sent[1:]] == [b"case.events.dlq:0@1", b"case.events.dlq:0@2"]


def test_the_listing_shows_where_who_why_and_when_but_never_the_contents(event):
    secret = f"{SYNTH}-Kim-Hometown".encode()
    poison = _dead(2, b'{"event_id": "' + secret + b'", "event_type": "' + secret + b'"}',
                   reason="envelope invalid at: event_id", source_offset=8)
    letters = collect([_dead(1, event), poison, _mark("case.events.dlq:0@1")])
    text = table(letters)
    assert SYNTH not in text and "Kim" not in text
    lines = text.splitlines()
    assert lines[0].split() == ["dead", "letter", "failed", "at", "group", "from", "event", "reason", "state"]
    assert "case.events.dlq:0@2" in lines[1] and "outstanding" in lines[1]
    assert "envelope invalid at: event_id" in lines[1]
    assert "case.status_changed" in lines[2] and "replayed 2026-11-28T02:00:00" in lines[2]
