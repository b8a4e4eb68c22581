"""`python -m services.intake.audit verify`: walk intake's audit trail and report the first entry
that was changed, removed, inserted or reordered (shared/audit.py says how each is told apart).

Prints the answer of `GET /api/v1/audit/verify` as JSON; exit code 0 when the chain verifies, 1
when it is broken, 2 when it cannot be checked (no audit key, no database). Needs the audit key
(`audit.key` in NRW_SECRETS_DIR): run it where intake's web process runs
(`docker compose exec intake-web python -m services.intake.audit verify`).
"""

from __future__ import annotations

import argparse
import json
import sys

from marshmallow import Schema, fields

from shared.audit import PROBLEMS, audit_trail
from shared.config import Settings
from shared.keys import KeyMissing


class FirstBad(Schema):
    """The first entry where the chain breaks."""

    position = fields.Integer(metadata={"description": "the position (seq) in the chain, from 1"})
    entry_id = fields.String(allow_none=True, metadata={"description": "the entry's _id; null for a missing one"})
    problem = fields.String(metadata={"enum": list(PROBLEMS), "description": (
        "changed: its MAC is valid at no position and the chain runs through it (edited); missing: no entry "
        "at this position, or the entry there links past its predecessor; inserted: an entry that is not "
        "part of the chain (a second entry for a taken position, a MAC nothing links to, no MAC but dated "
        "after the chain began); reordered: its MAC is valid for another position (moved)")})


class AuditVerification(Schema):
    """Whether the audit trail's chain is intact."""

    ok = fields.Boolean()
    entries = fields.Integer(metadata={"description": "chained entries in the trail"})
    unchained = fields.Integer(metadata={"description": "older entries written before the chain began (no MAC, "
                                                        "not verified)"})
    first_bad = fields.Nested(FirstBad, metadata={"description": "only when ok is false"})


def verify(db, settings: Settings, progress: bool = False) -> dict:
    """The verification answer for intake's database (as the API gives it)."""
    return AuditVerification().dump(audit_trail(db, settings).verify(progress=progress).as_dict())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m services.intake.audit",
                                     description="Check intake's tamper-evident audit trail.",
                                     epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="walk the chain; exit 1 at the first changed, missing, inserted or "
                                          "reordered entry")
    check.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown on a terminal)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    from shared.mongo import connect

    client = connect(settings, "intake")
    try:
        answer = verify(client[settings.database_name("intake")], settings,
                        progress=sys.stderr.isatty() and not args.no_progress)
    except KeyMissing as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()
    print(json.dumps(answer))
    if answer["ok"]:
        print(f"audit: the chain verifies: {answer['entries']} entries "
              f"({answer['unchained']} older entries before the chain, not verified)", file=sys.stderr)
        return 0
    bad = answer["first_bad"]
    print(f"audit: the chain is broken at position {bad['position']}: entry {bad['entry_id'] or '(none)'} "
          f"{bad['problem']}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
