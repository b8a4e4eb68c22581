"""Entry points shared by the services' background processes: event consumers and outbox relays."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Callable

from kafka.errors import KafkaError
from pymongo.database import Database

from shared.bus import EventConsumer, Handler, Publisher, run_relay, stop_on_signals, wait_for_topics
from shared.config import TOPICS, Settings
from shared.mongo import connect, is_server_internal, is_transient
from shared.web import configure_logging

log = logging.getLogger(__name__)


def wait_for(what: str, attempt: Callable[[], object], stop: threading.Event, interval_s: float = 1.0):
    """Call attempt() until it succeeds or stop is set; a dependency that is still starting is normal."""
    while not stop.is_set():
        try:
            return attempt()
        except Exception as exc:
            if not (is_transient(exc) or is_server_internal(exc) or isinstance(exc, KafkaError)):
                raise
            log.info("waiting for %s (%s)", what, type(exc).__name__)
            stop.wait(interval_s)
    return None


def run_consumer(service: str, topics: list[str], make_handlers: Callable[[Database, Publisher], dict[str, Handler]],
                 prepare: Callable[[Database], None] | None = None, argv: list[str] | None = None,
                 consumer_class: type[EventConsumer] = EventConsumer,
                 make_batch_handler: Callable[[Database, Publisher], Callable[[list[dict]], None]] | None = None,
                 max_poll_records: int = 100) -> None:
    """Run one service's event consumer until SIGTERM/SIGINT (`consumer_class`: an EventConsumer
    that checks more of each record, as intake's does of audit events)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m services.{service}.consumer",
        description=f"Consume {', '.join(topics)} into the {service} service (consumer group '{service}'). "
                    "Settings come from NRW_* environment variables.")
    parser.parse_args(argv)
    configure_logging(f"{service}-consumer")
    settings = Settings.from_env()
    stop = threading.Event()
    stop_on_signals(stop)
    db = connect(settings, service)[settings.database_name(service)]
    if prepare:
        wait_for("the database", lambda: prepare(db), stop)
    wait_for("the topics", lambda: wait_for_topics(settings, service, topics), stop)
    publisher = Publisher(settings, principal=service, client_id=f"nrw-{service}-consumer", max_block_ms=5000)
    consumer = consumer_class(settings, principal=service, group_id=service, topics=topics, handlers=make_handlers(db, publisher),
                             publisher=publisher, max_poll_records=max_poll_records,
                             batch_handler=make_batch_handler(db, publisher) if make_batch_handler else None)
    consumer.stop = stop
    try:
        consumer.run()
    finally:
        publisher.close()


def relay_main(argv: list[str] | None = None) -> None:
    """Run one service's outbox relay until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.relay",
        description="Publish events left in a service's outbox (the broker was down, or a process died "
                    "between its write and its publish). Settings come from NRW_* environment variables.")
    parser.add_argument("service", choices=sorted(TOPICS), help="the service whose outbox to sweep")
    parser.add_argument("collections", nargs="+", help="the service's collections that hold an outbox")
    args = parser.parse_args(argv)
    configure_logging(f"{args.service}-relay")
    settings = Settings.from_env()
    stop = threading.Event()
    stop_on_signals(stop)
    db = connect(settings, args.service)[settings.database_name(args.service)]
    publisher = Publisher(settings, principal=args.service, client_id=f"nrw-{args.service}-relay", max_block_ms=5000)
    try:
        run_relay([db[name] for name in args.collections], TOPICS[args.service], publisher, settings, stop)
    finally:
        publisher.close()
