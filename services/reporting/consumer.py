"""The reporting service's event consumer: reads intake, case and advocacy events (statistics read models arrive with a later issue).

Until handlers are added it validates every record, dead-letters what breaks the contract and
commits its position, so the group is in place and no poison message goes unnoticed.
"""

from __future__ import annotations

from shared.processes import run_consumer

TOPICS = ["intake.events", "case.events", "advocacy.events"]


def make_handlers(db, publisher) -> dict:
    """Event type -> handler (none yet)."""
    return {}


def main(argv=None) -> None:
    """Run the consumer until stopped."""
    run_consumer("reporting", TOPICS, make_handlers, argv=argv)


if __name__ == "__main__":
    main()
