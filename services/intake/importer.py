"""`python -m services.intake.importer FILE`: import existing cases from a spreadsheet (CSV or XLSX).

The first row names the columns by the fields of a report, as in the API: person.full_name,
person.sex, person.birth_year, person.nationality, person.hometown, person.family_contact,
detention.detained_on, detention.province, detention.city, detention.facility, detention.authority,
risk.deportation_imminent, risk.expected_deportation_on, risk.vulnerabilities (comma-separated),
risk.trafficking_victim, source.type, source.reliability, source.received_on, consent.advocacy,
consent.statistics, notes. A sheet with headers of its own (Korean or English) gives a column
mapping: --columns FILE (JSON or YAML, {"성명": "person.full_name", "비고": null}: null leaves a
column out) or --column HEADER=FIELD; the dry run shows which column feeds which field.

What sheets hold is read as people write it: empty cells (or a dash) are missing; yes/no columns
take yes, no, true, false, 1, 0, 예, 아니오; sex takes female, male, unknown, F, M, 여, 남, 여성,
남성; dates take 2023-01-05, 2023-1-5, 2023.01.05, 2023년 1월 5일 and date cells, and 05/01/2023
only with the sheet's order stated (--day-first or --month-first: a sheet holding such dates is
refused without it).

Each row is checked by the same rules as the API and becomes one report, saved in one write: a
bad row is never half imported. --dry-run says row by row what would be created, matched to an
existing case or rejected, and why, and saves nothing. Reasons name columns, never their values.
An import (not a dry run) is written to intake's audit trail before its first row: the account it
files as (--as), the server login that ran it, the number of rows and the file's digest.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

from marshmallow import ValidationError
from tqdm import tqdm

from shared.audit import audit_trail
from shared.audit_events import command_entry
from shared.bus import Publisher
from shared.config import Settings
from shared.crypto import Keyring
from shared.errors import flatten_messages
from shared.exports import csv_row
from shared.keys import KeyMissing
from shared.mongo import connect, utcnow

from services.intake import domain, handlers
from services.intake.datakeys import IntakeKeyring
from services.intake.schemas import ReportIn
from services.intake.sheet import DAY_FIRST, IDENTITY, MONTH_FIRST, ColumnMap, row_to_report, year_last_columns
from services.intake.store import IntakeStore

__all__ = ["import_rows", "main", "read_sheet", "row_to_report"]


@dataclass
class Outcome:
    """What happened (or would happen) to one row."""

    row: int
    action: str  # created, matched, rejected (dry run: would_create, would_match)
    detail: str = ""


MAX_ROWS = 10_000  # an organisation's whole spreadsheet; more is a mistake or an attack
MAX_BYTES = 20_000_000


def read_sheet(path: Path, limit: int) -> tuple[list[str], list[dict]]:
    """The headers and (at most `limit`) rows of a CSV or XLSX file, each row {header: text}."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        sheet = load_workbook(path, read_only=True, data_only=True).active
        rows = sheet.iter_rows(values_only=True)
        headers = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        found = ({h: _text(v) for h, v in itertools.zip_longest(headers, values[:len(headers)]) if h}
                 for values in rows)
        return headers, list(itertools.islice(found, limit))
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        headers = [h.strip() for h in reader.fieldnames or []]
        found = ({k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader)
        return headers, list(itertools.islice(found, limit))


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def import_rows(rows, *, store: IntakeStore, keyring: Keyring, publisher: Publisher | None, actor: str,
                dry_run: bool, progress: bool = False, total: int | None = None,
                actor_name: str | None = None, columns: ColumnMap = IDENTITY,
                order: str | None = None) -> list[Outcome]:
    """Check every row and save the valid ones (or, in a dry run, say what would be done). The
    importing user (`actor`, `actor_name`: user id and username) is assigned to each case it opens.
    `columns` says which header feeds which field, `order` how to read dates like 05/01/2023."""
    outcomes = []
    seen: set[str] = set()  # a dry run also matches people who appear twice in the same file
    for number, row in enumerate(tqdm(rows, total=total, unit="row", disable=not progress), start=2):
        try:
            report = ReportIn().load(row_to_report(row, columns, order))
        except ValidationError as exc:  # named by the sheet's header and the field, never the value
            reasons = "; ".join(f"{columns.describe(field, list(row))}: {' '.join(msgs)}"
                                for field, msgs in flatten_messages(exc.messages).items())
            outcomes.append(Outcome(number, "rejected", reasons))
            continue
        if dry_run:
            key = keyring.blind_index(domain.person_match_key(report["person"]["full_name"],
                                                              report["person"].get("birth_year")))
            known = store.persons.find_one({"_id": key})
            detail = f"case {known['case_id']}" if known else ("an earlier row" if key in seen else "")
            outcomes.append(Outcome(number, "would_match" if known or key in seen else "would_create", detail))
            seen.add(key)
            continue
        created = handlers.submit_report(report, actor=actor, actor_name=actor_name, store=store, keyring=keyring,
                                         publisher=publisher, now=utcnow())
        outcomes.append(Outcome(number, "matched" if created["matched_existing_case"] else "created",
                                f"report {created['report_id']} case {created['case_id']}"))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m services.intake.importer",
                                     description="Import existing cases from a CSV or XLSX spreadsheet.",
                                     epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help="the spreadsheet (.csv or .xlsx)")
    parser.add_argument("--as", dest="username", required=True, help="the caseworker the reports are filed as")
    parser.add_argument("--dry-run", action="store_true", help="check and report row by row; save nothing")
    parser.add_argument("--columns", type=Path, metavar="FILE",
                        help="column mapping, JSON or YAML: {header: field, ...} (null leaves a column out)")
    parser.add_argument("--column", action="append", default=[], metavar="HEADER=FIELD",
                        help="map one column (after --columns; repeat it); HEADER= leaves a column out")
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--day-first", dest="order", action="store_const", const=DAY_FIRST,
                       help="read dates like 05/01/2023 as 5 January 2023")
    order.add_argument("--month-first", dest="order", action="store_const", const=MONTH_FIRST,
                       help="read dates like 05/01/2023 as 1 May 2023")
    parser.add_argument("--report", type=Path, help="also write the row-by-row outcome to this CSV file")
    parser.add_argument("--max-rows", type=int, default=MAX_ROWS,
                        help=f"refuse a file with more rows than this, importing nothing (default {MAX_ROWS})")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES,
                        help=f"refuse a larger file before opening it (default {MAX_BYTES // 1_000_000} MB)")
    args = parser.parse_args(argv)
    if not args.file.exists():
        parser.error(f"{args.file} does not exist")
    if args.file.stat().st_size > args.max_bytes:
        parser.error(f"{args.file} is larger than {args.max_bytes} bytes (--max-bytes); nothing imported")
    headers, rows = read_sheet(args.file, args.max_rows + 1)
    if len(rows) > args.max_rows:
        parser.error(f"{args.file} has more than {args.max_rows} rows (--max-rows); nothing imported")
    columns = _column_map(parser, args)
    plan, problems = columns.plan(headers)
    if problems:
        parser.error("; ".join(problems) + "; nothing imported")
    needs_order = year_last_columns(rows, columns)
    if needs_order and args.order is None:
        parser.error("dates like 05/01/2023 can be read two ways: say whether the day or the month comes first "
                     "(--day-first or --month-first) for " + ", ".join(f"column {h!r} ({n} rows)"
                                                                     for h, n in needs_order.items())
                     + "; nothing imported")
    settings = Settings.from_env()
    client = connect(settings, "intake")
    publisher = None
    try:
        user = client[settings.database_name("identity")]["users"].find_one({"_id": args.username})
        if user is None or not {"caseworker", "admin"} & set(user["roles"]):
            parser.error(f"no caseworker or admin named {args.username!r}")
        store = IntakeStore(client[settings.database_name("intake")])
        store.ensure_indexes()
        if not args.dry_run:  # written before anything is imported: no import leaves no trace
            digest = hashlib.sha256(args.file.read_bytes()).hexdigest()[:16]  # not the file's name: it may name someone
            try:
                audit_trail(store.db, settings).append(command_entry(
                    "reports_imported", detail=f"rows={len(rows)} sha256={digest}", account=user))
            except KeyMissing as exc:
                parser.error(f"the audit trail cannot be written ({exc}); nothing imported")
        publisher = None if args.dry_run else Publisher(settings, principal="intake", client_id="nrw-intake-import", max_block_ms=5000)
        outcomes = import_rows(rows, store=store, keyring=IntakeKeyring.from_settings(settings), publisher=publisher,
                               actor=user["user_id"], actor_name=user["_id"], dry_run=args.dry_run,
                               progress=sys.stderr.isatty(), total=len(rows), columns=columns, order=args.order)
    finally:
        if publisher:
            publisher.close()
        client.close()
    if args.dry_run:
        for header, target in plan:
            print(f"column {header!r} -> {target or 'left out'}")
    for outcome in outcomes:
        if outcome.action == "rejected" or args.dry_run:
            print(f"row {outcome.row}: {outcome.action.replace('_', ' ')}{': ' + outcome.detail if outcome.detail else ''}")
    if args.report:
        with args.report.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["row", "action", "detail"])
            writer.writerows(csv_row((o.row, o.action, o.detail)) for o in outcomes)
    counts = {a: sum(o.action == a for o in outcomes) for a in sorted({o.action for o in outcomes})}
    print("import: " + ", ".join(f"{n} {a.replace('_', ' ')}" for a, n in counts.items())
          + (" (dry run: nothing saved)" if args.dry_run else ""))
    return 1 if counts.get("rejected") else 0


def _column_map(parser: argparse.ArgumentParser, args) -> ColumnMap:
    """The column mapping of --columns and --column (a bad one stops the command)."""
    pairs: list[tuple[str, str | None]] = []
    try:
        if args.columns:
            pairs += ColumnMap.from_text(args.columns.read_text(encoding="utf-8-sig"), args.columns.name).pairs()
        for option in args.column:
            header, equals, target = option.partition("=")
            if not equals:
                parser.error(f"--column {option!r}: write HEADER=FIELD")
            pairs.append((header.strip(), target.strip() or None))
        return ColumnMap.from_pairs(dict(pairs).items(), "the column mapping")
    except (OSError, ValueError) as exc:
        parser.error(f"{exc}; nothing imported")


if __name__ == "__main__":
    sys.exit(main())
