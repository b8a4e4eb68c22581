"""`python -m shared.topics`: create the system's topics (3 partitions each), idempotently."""

from __future__ import annotations

import argparse

from shared.bus import ensure_topics
from shared.config import Settings, all_topics


def main(argv: list[str] | None = None) -> None:
    """Create every topic that is missing and say what was done."""
    parser = argparse.ArgumentParser(prog="python -m shared.topics", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for the broker (default 60)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    created = ensure_topics(settings, timeout_s=args.timeout)
    kept = [t for t in all_topics() if t not in created]
    for topic in created:
        print(f"topics: created {topic} ({settings.topic_partitions} partitions)")
    if kept:
        print(f"topics: {len(kept)} already present")


if __name__ == "__main__":
    main()
