"""The advocacy service's event consumer: reads case events (the deportation clock and appeals arrive with a later issue).

Until handlers are added it validates every record, dead-letters what breaks the contract and
commits its position, so the group is in place and no poison message goes unnoticed.
"""

from __future__ import annotations

from shared.processes import run_consumer

TOPICS = ["case.events"]


def make_handlers(db, publisher) -> dict:
    """Event type -> handler (none yet)."""
    return {}


def main(argv=None) -> None:
    """Run the consumer until stopped."""
    run_consumer("advocacy", TOPICS, make_handlers, argv=argv)


if __name__ == "__main__":
    main()
