"""`python -m shared.deadletters`: see the dead letters, and send them back once their cause is mended.

    list     every dead letter, outstanding first: where it came from, which consumer group gave
             up on it, why and when (never its contents)
    replay   send chosen dead letters back to the topic they came from, to be applied again

A dead letter is replayed by publishing its original key and bytes to its source topic. Every
consumer is idempotent, so the groups that had applied the event skip it and the group that had
failed applies it. A record that still fails validation is not replayed: it would only come back.
Each replay is recorded on the dead-letter topic itself (a record with the header
nrw.dlq.replayed.of naming the dead letter), so that `list` tells what is outstanding and a second
replay of the same dead letter is refused unless asked for (--again). The record goes to the
source topic first and the mark after, so a crash in between can only lead to a second replay,
which the consumers' idempotency absorbs. Each replay is written to intake's audit trail before
anything is sent (so the tool runs where intake's commands run, with audit.key); without it,
nothing is replayed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import re
import sys
from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from tqdm import tqdm

from shared.bus import DLQ_HEADER_PREFIX
from shared.config import TOPICS, Settings, dead_letter_topic
from shared.events import EventError, decode, validate_event
from shared.kafka_auth import client_options

PRINCIPAL = "deadletters"  # the broker lets it read dead letters and write them back, nothing else

REPLAYED_OF = DLQ_HEADER_PREFIX + "replayed.of"
REPLAYED_AT = DLQ_HEADER_PREFIX + "replayed.at"
# On the record sent back to the source topic: which dead letter it is.
REPLAY_HEADER = "nrw.replay.of"
_COORDINATE = re.compile(r"^(?P<topic>[\w.-]+\.dlq):(?P<partition>\d+)@(?P<offset>\d+)$")


@dataclasses.dataclass
class DeadLetter:
    """One record a consumer group gave up on, as its dead-letter topic holds it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    replays: list[str] = dataclasses.field(default_factory=list)  # when it was replayed

    @property
    def coordinate(self) -> str:
        """Its name for the command line: <dead-letter topic>:<partition>@<offset>."""
        return f"{self.topic}:{self.partition}@{self.offset}"

    def header(self, name: str) -> str:
        return self.headers.get(DLQ_HEADER_PREFIX + name, "")

    @property
    def group(self) -> str:
        return self.header("consumer.group")

    @property
    def source(self) -> tuple[str, int, int]:
        """(topic, partition, offset) of the original record. The topic is the one whose dead
        letters these are (the name of this topic, never a header a writer chose)."""
        try:
            partition, offset = int(self.header("source.partition") or -1), int(self.header("source.offset") or -1)
        except ValueError:
            partition, offset = -1, -1
        return self.topic.removesuffix(".dlq"), partition, offset

    def event(self) -> tuple[str, str]:
        """(event type, event id) if the bytes are a valid event's, else ("", ""): nothing is read
        out of a record that is not, as it could hold anything."""
        try:
            event = validate_event(decode(self.value))
        except EventError:
            return "", ""
        return event["event_type"], str(event["event_id"])

    def still_invalid(self) -> str | None:
        """Why the record would be dead-lettered again at once, or None if it is a valid event."""
        try:
            validate_event(decode(self.value))
        except EventError as exc:
            return exc.reason
        return None


def parse_coordinate(text: str) -> tuple[str, int, int]:
    """'intake.events.dlq:1@42' -> ('intake.events.dlq', 1, 42); ValueError saying the form otherwise."""
    match = _COORDINATE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a dead letter's name: expected <topic>.dlq:<partition>@<offset>, "
                         "as `list` prints it")
    return match["topic"], int(match["partition"]), int(match["offset"])


def _headers(record) -> dict[str, str]:
    return {name: (value or b"").decode("utf-8", "replace") for name, value in (record.headers or [])}


def collect(records: Iterable) -> list[DeadLetter]:
    """Dead letters from a dead-letter topic's records, each with the replays recorded after it."""
    letters: dict[str, DeadLetter] = {}
    marks: list[tuple[str, str]] = []
    for record in records:
        headers = _headers(record)
        if REPLAYED_OF in headers:
            marks.append((headers[REPLAYED_OF], headers.get(REPLAYED_AT, "")))
            continue
        letter = DeadLetter(record.topic, record.partition, record.offset, record.key, record.value, headers)
        letters[letter.coordinate] = letter
    for coordinate, at in marks:
        if coordinate in letters:
            letters[coordinate].replays.append(at)
    return sorted(letters.values(), key=lambda d: (bool(d.replays), d.header("failed_at"), d.coordinate))


def read_dead_letters(settings: Settings, source_topics: list[str], quiet: bool = True) -> list[DeadLetter]:
    """Every record of the source topics' dead-letter topics, read from the beginning to the end."""
    consumer = KafkaConsumer(**client_options(settings, PRINCIPAL), group_id=None, enable_auto_commit=False,
                             bootstrap_timeout_ms=10000)
    try:
        partitions = [TopicPartition(dead_letter_topic(t), p) for t in source_topics
                      for p in sorted(consumer.partitions_for_topic(dead_letter_topic(t)) or [])]
        if not partitions:
            return []
        consumer.assign(partitions)
        start, end = consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, start[tp])
        records = []
        remaining = {tp for tp in partitions if end[tp] > start[tp]}
        with tqdm(total=sum(end[tp] - start[tp] for tp in partitions), unit="record", desc="reading",
                  disable=quiet or not remaining, file=sys.stderr) as progress:
            while remaining:
                for tp, batch in consumer.poll(timeout_ms=1000).items():
                    kept = [r for r in batch if r.offset < end[tp]]
                    records.extend(kept)
                    progress.update(len(kept))
                remaining = {tp for tp in remaining if consumer.position(tp) < end[tp]}
        return collect(records)
    finally:
        consumer.close()


def select(letters: list[DeadLetter], *, group: str | None = None, coordinates: list[str] | None = None,
           again: bool = False) -> tuple[list[DeadLetter], list[tuple[DeadLetter | str, str]]]:
    """(to replay, refused with the reason). Named dead letters that do not exist are refused by name."""
    by_name = {d.coordinate: d for d in letters}
    refused: list[tuple[DeadLetter | str, str]] = []
    if coordinates:
        chosen = []
        for name in coordinates:
            topic, partition, offset = parse_coordinate(name)
            found = by_name.get(f"{topic}:{partition}@{offset}")
            if found is None:
                refused.append((name, "no such dead letter"))
            else:
                chosen.append(found)
    else:
        chosen = list(letters)
    if group:
        chosen = [d for d in chosen if d.group == group]
    replay, sources = [], set()
    for letter in chosen:
        if letter.replays and not again and not coordinates:
            continue  # "every outstanding one": a replayed dead letter is not outstanding
        if letter.replays and not again:
            refused.append((letter, f"already replayed at {letter.replays[-1]} (--again replays it once more)"))
        elif (reason := letter.still_invalid()) is not None:
            refused.append((letter, f"still invalid: {reason}"))
        elif letter.source in sources:
            continue  # several groups gave up on the same record: sending it back once serves them all
        else:
            sources.add(letter.source)
            replay.append(letter)
    return replay, refused


def check_sources(settings: Settings, replay: list[DeadLetter]) -> tuple[list[DeadLetter], list[tuple[DeadLetter, str]]]:
    """(to replay, refused): a dead letter goes back only if its key and bytes are those of the
    record its source topic holds at the place it names. Whoever may write a dead-letter topic (a
    service's consumer may, for the topics it reads) could otherwise have the tool publish, in its
    own name, an event that service may not write."""
    if not replay:
        return [], []
    consumer = KafkaConsumer(**client_options(settings, PRINCIPAL), group_id=None, enable_auto_commit=False,
                             bootstrap_timeout_ms=10000)
    kept, refused = [], []
    try:
        for letter in replay:
            topic, partition, offset = letter.source
            original = _record_at(consumer, TopicPartition(topic, partition), offset) if offset >= 0 else None
            if original is None:
                refused.append((letter, f"its source {topic}:{partition}@{offset} holds no such record"))
            elif (original.key, original.value) != (letter.key, letter.value):
                refused.append((letter, f"not the record at its source {topic}:{partition}@{offset} (forged?)"))
            else:
                kept.append(letter)
    finally:
        consumer.close()
    return kept, refused


def _record_at(consumer: KafkaConsumer, tp: TopicPartition, offset: int):
    """The record at one offset, or None if the partition does not hold it."""
    if tp.partition not in (consumer.partitions_for_topic(tp.topic) or set()):
        return None
    consumer.assign([tp])
    start, end = consumer.beginning_offsets([tp])[tp], consumer.end_offsets([tp])[tp]
    if not start <= offset < end:
        return None
    consumer.seek(tp, offset)
    for _ in range(20):
        for record in consumer.poll(timeout_ms=500, max_records=1).get(tp, []):
            return record if record.offset == offset else None
    return None


def send_back(settings: Settings, replay: list[DeadLetter], letters: list[DeadLetter], quiet: bool = True,
              producer: KafkaProducer | None = None) -> list[DeadLetter]:
    """Publish each chosen dead letter's record to its source topic, then record the replay on the
    dead-letter topic for every dead letter of that record: every group reading the topic reads it
    again, so none of them still has it outstanding. Returns the dead letters marked."""
    own = producer is None
    producer = producer or KafkaProducer(**client_options(settings, PRINCIPAL), acks="all",
                                         enable_idempotence=True, bootstrap_timeout_ms=10000)
    marked = []
    try:
        for letter in tqdm(replay, unit="record", desc="replaying", disable=quiet or not replay, file=sys.stderr):
            topic = letter.source[0]
            producer.send(topic, key=letter.key, value=letter.value,
                          headers=[(REPLAY_HEADER, letter.coordinate.encode())]).get(timeout=30)
            now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            for same in [d for d in letters if d.source == letter.source]:
                mark = json.dumps({"replayed_of": same.coordinate, "to": topic, "at": now}).encode()
                producer.send(same.topic, key=same.key, value=mark,
                              headers=[(REPLAYED_OF, same.coordinate.encode()), (REPLAYED_AT, now.encode())]
                              ).get(timeout=30)
                marked.append(same)
    finally:
        if own:
            producer.close()
    return marked


def audit_replays(settings: Settings, replay: list[DeadLetter]) -> None:
    """Write each replay to intake's audit trail (run where intake's commands run: it needs
    audit.key and intake's database): which dead letter, which kind of event for which case, and
    the server login that sent it back (shared/audit_events.py)."""
    from shared.audit_events import append_for_command, command_entry

    entries = []
    for letter in replay:
        event_type, _ = letter.event()
        case_id = validate_event(decode(letter.value))["case_id"] if event_type else ""
        entries.append(command_entry("dead_letter_replayed", case_id=case_id, object_id=letter.coordinate,
                                     detail=f"{event_type or 'invalid'} to {letter.source[0]} (group {letter.group})"))
    append_for_command(settings, entries)


def table(letters: list[DeadLetter]) -> str:
    """The dead letters as a text table: no key, no value, only where, who, why, when and what kind."""
    rows = [("dead letter", "failed at", "group", "from", "event", "reason", "state")]
    for d in letters:
        event_type, event_id = d.event()
        topic, partition, offset = d.source
        rows.append((d.coordinate, d.header("failed_at")[:19], d.group, f"{topic}:{partition}@{offset}",
                     f"{event_type} {event_id[:8]}".strip() or "-", d.header("reason")[:80],
                     f"replayed {d.replays[-1][:19]}" if d.replays else "outstanding"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; 0 when everything asked for was done, 1 when something was refused."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.deadletters",
        description="See the dead letters (records a consumer group gave up on), and send them back to their "
                    "topic once the cause is mended. Settings come from NRW_* environment variables.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--topic", action="append", metavar="TOPIC",
                       help="a source topic whose dead letters to read (repeatable; default: "
                            + ", ".join(TOPICS.values()) + ")")
        p.add_argument("--group", help="only the dead letters of this consumer group (e.g. case)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    p_list = sub.add_parser("list", help="list the dead letters, outstanding first")
    common(p_list)
    p_list.add_argument("--outstanding", action="store_true", help="only those not replayed yet")
    p_list.add_argument("--json", action="store_true", help="one JSON object a line instead of a table")
    p_replay = sub.add_parser("replay", help="send dead letters back to their source topic")
    common(p_replay)
    p_replay.add_argument("dead_letters", nargs="*", default=[], metavar="DEAD_LETTER",
                          help="names as `list` prints them, e.g. intake.events.dlq:1@42")
    p_replay.add_argument("--all", action="store_true", help="every outstanding dead letter (of --group, if given)")
    p_replay.add_argument("--again", action="store_true", help="replay dead letters replayed before, too")
    p_replay.add_argument("--dry-run", action="store_true", help="say what would be replayed, send nothing")
    args = parser.parse_args(argv)

    if args.command == "replay":
        try:
            for name in args.dead_letters:
                parse_coordinate(name)
        except ValueError as exc:
            p_replay.error(str(exc))
        if bool(args.dead_letters) == bool(args.all):
            p_replay.error("name the dead letters to replay, or give --all (not both)")
    settings = Settings.from_env()
    topics = args.topic or list(TOPICS.values())
    try:
        return _run(args, settings, topics)
    except KafkaError as exc:
        print(f"deadletters: Kafka at {settings.kafka_bootstrap} did not answer ({type(exc).__name__}); "
              "nothing was changed", file=sys.stderr)
        return 2


def _run(args, settings: Settings, topics: list[str]) -> int:
    letters = read_dead_letters(settings, topics, quiet=args.quiet)
    if args.command == "list":
        shown = [d for d in letters if (not args.group or d.group == args.group)
                 and not (args.outstanding and d.replays)]
        if args.json:
            for d in shown:
                event_type, event_id = d.event()
                print(json.dumps({"dead_letter": d.coordinate, "failed_at": d.header("failed_at"), "group": d.group,
                                  "source": dict(zip(("topic", "partition", "offset"), d.source)),
                                  "event_type": event_type or None, "event_id": event_id or None,
                                  "reason": d.header("reason"), "replayed_at": d.replays}))
        else:
            outstanding = sum(1 for d in shown if not d.replays)
            print(table(shown) if shown else "no dead letters")
            print(f"\n{len(shown)} dead letters, {outstanding} outstanding (topics: {', '.join(topics)})")
        return 0
    replay, refused = select(letters, group=args.group, coordinates=args.dead_letters or None, again=args.again)
    replay, mismatched = check_sources(settings, replay)
    refused += mismatched
    for what, reason in refused:
        name = what.coordinate if isinstance(what, DeadLetter) else what
        print(f"not replayed: {name}: {reason}")
    if args.dry_run:
        for letter in replay:
            print(f"would replay: {letter.coordinate} -> {letter.source[0]}")
    elif replay:
        try:  # written before anything is sent back: no replay leaves no trace
            audit_replays(settings, replay)
        except Exception as exc:  # no audit key, no database: nothing is replayed
            print(f"deadletters: the audit trail cannot be written ({type(exc).__name__}); nothing was replayed",
                  file=sys.stderr)
            return 2
        for letter in send_back(settings, replay, letters, quiet=args.quiet):
            print(f"replayed: {letter.coordinate} (group {letter.group}) -> {letter.source[0]}")
    print(f"{len(replay)} {'to replay' if args.dry_run else 'replayed'}, {len(refused)} not replayed")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
