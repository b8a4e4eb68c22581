"""`python -m shared.topics`: create the system's topics (3 partitions each) and, on a broker that
requires credentials, every principal's SCRAM credentials and ACLs, idempotently, as the admin."""

from __future__ import annotations

import argparse

from kafka.errors import KafkaError

from shared.bus import ensure_topics
from shared.config import Settings, all_topics


def main(argv: list[str] | None = None) -> int:
    """Create every topic that is missing, set the rights, and say what was done."""
    parser = argparse.ArgumentParser(prog="python -m shared.topics", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for the broker (default 60)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        created = ensure_topics(settings, timeout_s=args.timeout)
    except KafkaError as exc:
        parser.exit(1, f"topics: the broker refused or did not answer ({type(exc).__name__}); "
                       f"is it running at {settings.kafka_bootstrap}, with the admin password of this secrets folder?\n")
    kept = [t for t in all_topics() if t not in created]
    for topic in created:
        print(f"topics: created {topic} ({settings.topic_partitions} partitions, {settings.topic_replication} replicas, "
              f"min.insync.replicas {settings.topic_min_insync})")
    if kept:
        print(f"topics: {len(kept)} already present")
    if settings.kafka_security_protocol.upper().startswith("SASL_"):
        print("topics: credentials and rights of every principal set (shared/kafka_auth.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
