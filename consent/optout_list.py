"""`leadsms optouts import FILE.csv --firm ID` and `leadsms optouts export --firm ID`.

The import brings a firm's do-not-text list in (from a previous SMS provider, or the
CRM's own list). The phone is the column headed `phone`, else the first column; any
format the CRM hook accepts, read with the firm's default region. A first row whose
phone cell holds no digit is a header. The file is streamed: one batch of 1,000 readable
rows in memory at a time, each batch committed in one transaction, so a million rows
cost what a thousand do and an interrupted import is resumed by running it again.

Each phone goes through the consent ledger (`ledger.opt_out_many`, source
`list:<NAME>`, NAME defaulting to the file's name): one ledger row per phone whose state
changed. A phone opted out already (by the lead, staff, or an earlier import) is left
as it is and counted as `already_opted_out`, as is a phone repeated in the file. A phone
staff removed from the list is skipped (`skipped_removed`) unless `--force`.

Progress goes to stderr; the summary is the last line of stdout, as JSON: added,
already opted out, skipped, and the unreadable rows with their line numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, TextIO

import asyncpg
import structlog

import events
from consent import ledger, queries
from firms.queries import firm_by_id
from shared.config import Settings
from shared.errors import AppError
from shared.logging import configure
from shared.phones import check_phone, digits_of
from shared.csv_rows import batches, numbered_records
from shared.progress import ProgressLine

log = structlog.get_logger(__name__)

BATCH_ROWS = 1000
UNREADABLE_ROWS_SHOWN = 100
MAX_SOURCE_NAME = 100


@dataclass
class ListImportSummary:
    file: str
    firm_id: int
    source: str
    rows: int = 0
    added: int = 0
    already_opted_out: int = 0
    skipped_removed: int = 0
    unreadable: int = 0
    unreadable_rows: list[dict[str, Any]] = field(default_factory=list)
    batches: int = 0
    seconds: float = 0.0

    def reject(self, line: int, reason: str) -> None:
        self.unreadable += 1
        if len(self.unreadable_rows) < UNREADABLE_ROWS_SHOWN:
            self.unreadable_rows.append({"line": line, "reason": reason})

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file, "firm_id": self.firm_id, "source": self.source, "rows": self.rows,
            "added": self.added, "already_opted_out": self.already_opted_out,
            "skipped_removed": self.skipped_removed, "unreadable": self.unreadable,
            "unreadable_rows": self.unreadable_rows,
            "unreadable_rows_truncated": self.unreadable > len(self.unreadable_rows),
            "batches": self.batches, "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows / self.seconds) if self.seconds > 0 else None,
        }


def source_for(path: str, name: str | None) -> str:
    """`list:<NAME>`, NAME defaulting to the file's name."""
    name = (name if name is not None else os.path.basename(path)).strip()
    if not 1 <= len(name) <= MAX_SOURCE_NAME:
        raise AppError(f"--source must be 1 to {MAX_SOURCE_NAME} characters", code="bad_source")
    return f"{ledger.LIST_PREFIX}{name}"


# ---- reading -----------------------------------------------------------------------------

def listed_phones(text: TextIO, region: str, summary: ListImportSummary) -> Iterator[str]:
    """Each readable row's phone in E.164; unreadable rows are recorded in `summary`."""
    column: int | None = None

    def unreadable(line: int, reason: str) -> None:
        summary.rows += 1
        summary.reject(line, reason)

    for line, values in numbered_records(csv.reader(text), unreadable):
        if not values or not any(cell.strip() for cell in values):
            continue  # a blank line
        if column is None:
            names = [cell.strip().lower() for cell in values]
            if "phone" in names:
                column = names.index("phone")
                continue
            column = 0
            if not digits_of(values[0]):
                continue  # a header naming its first column otherwise
        summary.rows += 1
        raw = values[column] if column < len(values) else ""
        checked = check_phone(raw, region)
        if checked.status != "valid":
            reason = "no phone" if checked.status == "missing" else f"not a phone number ({checked.error})"
            summary.reject(line, f"{reason}: {raw[:40]!r}" if raw.strip() else reason)
            continue
        yield checked.e164


# ---- the import --------------------------------------------------------------------------

async def import_list(dsn: str, firm_id: int, path: str, *, source_name: str | None = None, force: bool = False,
                      batch_size: int = BATCH_ROWS, progress_stream: TextIO | None = None) -> ListImportSummary:
    from shared.db import connect

    source = source_for(path, source_name)
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise AppError(f"cannot read {path}: {exc.strerror}", code="bad_file") from None
    summary = ListImportSummary(file=path, firm_id=firm_id, source=source)
    started = time.monotonic()
    conn = await connect(dsn)
    try:
        firm = await firm_by_id(conn, firm_id)
        if firm is None:
            raise AppError(f"no firm with id {firm_id}", code="no_firm")
        progress = ProgressLine(progress_stream, os.fstat(raw.fileno()).st_size, "optouts import")

        def counts(elapsed: float) -> str:
            return (f"{summary.rows:,} rows  added {summary.added:,}  already {summary.already_opted_out:,}  "
                    f"skipped {summary.skipped_removed:,}  unreadable {summary.unreadable:,}  "
                    f"{summary.rows / elapsed:,.0f} rows/s")

        # Bad bytes become lone surrogates: such a phone is unreadable, not fatal.
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        for batch in batches(listed_phones(text, firm["default_region"], summary), batch_size):
            await _store_batch(conn, firm_id, source, batch, force, summary)
            progress.show(raw.tell(), counts)
        summary.seconds = time.monotonic() - started
        progress.show(raw.tell(), counts, final=True)
    finally:
        raw.close()
        await conn.close()
    log.info("optouts_imported", **{k: v for k, v in summary.as_json().items() if k != "unreadable_rows"})
    return summary


async def _store_batch(conn: asyncpg.Connection, firm_id: int, source: str, batch: list[str], force: bool,
                       summary: ListImportSummary) -> None:
    """One batch in one transaction: every phone not removed by staff (or all, with
    --force) onto the list through the ledger."""
    phones = sorted(set(batch))
    async with conn.transaction():
        removed = set() if force else await queries.removed_among(conn, firm_id, phones)
        wanted = [p for p in phones if p not in removed]
        added = await ledger.opt_out_many(conn, firm_id, wanted, source)
        if force:
            await queries.forget_removals(conn, firm_id, wanted)
        skipped = sum(1 for p in batch if p in removed)
        # the change feed's one summary event per batch, not one per phone
        await events.record(conn, firm_id, "optouts.imported", {
            "source": source, "rows": len(batch), "added": len(added), "skipped_removed": skipped,
            "already_opted_out": len(batch) - len(added) - skipped,
        })
    summary.batches += 1
    summary.added += len(added)
    summary.skipped_removed += skipped
    summary.already_opted_out += len(batch) - len(added) - skipped


# ---- the export --------------------------------------------------------------------------

EXPORT_COLUMNS = ("phone", "source", "at")


async def export_list(dsn: str, firm_id: int, out: TextIO, fmt: str = "csv") -> int:
    """Write the firm's opted-out phones (phone, source, at) in phone order; how many."""
    from shared.db import connect

    conn = await connect(dsn)
    count = 0
    try:
        if await firm_by_id(conn, firm_id) is None:
            raise AppError(f"no firm with id {firm_id}", code="no_firm")
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(EXPORT_COLUMNS)
        else:
            out.write("[")
        after: str | None = None
        while rows := await queries.opt_out_page(conn, firm_id, after, 5000):
            for r in rows:
                at = r["at"].isoformat() if r["at"] else None
                if writer is not None:
                    writer.writerow((r["phone_e164"], r["source"], at))
                else:
                    out.write(("," if count else "") + "\n" + json.dumps(
                        {"phone": r["phone_e164"], "source": r["source"], "at": at}))
                count += 1
            after = rows[-1]["phone_e164"]
        if writer is None:
            out.write("\n]\n")
    finally:
        await conn.close()
    out.flush()
    return count


# ---- the command -------------------------------------------------------------------------

def cmd_optouts(args: argparse.Namespace) -> int:
    settings = Settings.for_command("optouts")
    configure(settings.log_format, settings.log_level)
    if args.optouts_command == "import":
        summary = asyncio.run(import_list(
            settings.database_url, args.firm, args.file, source_name=args.source, force=args.force,
            batch_size=args.batch_size, progress_stream=None if args.no_progress else sys.stderr,
        ))
        print(json.dumps(summary.as_json()), flush=True)
        return 0
    asyncio.run(export_list(settings.database_url, args.firm, sys.stdout, args.format))
    return 0
