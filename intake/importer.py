"""`leadsms import FILE.csv --firm ID`: bulk intake of older leads.

Streams the file (one batch in memory at a time, so a million rows cost what a thousand
do), validates each row inline with the hook's rules and the firm's default region, and
stores each batch in one transaction: COPY into a temp table, then one
`INSERT ... SELECT ... ON CONFLICT (firm_id, external_id) DO NOTHING`, then one `UPDATE`
of the signups whose external_id was stored with other values (a CRM export run again
after corrections: both phones of a moved signup relink, the old phone's scheduled sends
to it are cancelled). An interrupted import is resumed by running it again: rows already
stored unchanged count as duplicates.

No Lookup call is made: older leads are looked up lazily at first thread open, as the
product promises (a million paid lookups at import would be a surprise bill). A phone
the Lookup cache already calls invalid lands invalid.

A malformed row (missing external_id, an oversized field, a naive signed_up_at, the
wrong number of fields) is counted and reported with its line number, not fatal. A
signup whose phone is bad is not malformed: it is stored with `phone_status = invalid`
and its reason, as the hook would store it.

Progress goes to stderr (one self-overwriting line on a terminal, a plain line every few
seconds otherwise; `--no-progress` silences it); the summary is the last line of stdout,
as JSON.
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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator, TextIO

import structlog

import events
from conversations import queries as conversation_queries
from intake import queries
from intake.validation import LeadInputError, lead_from_row
from shared.config import Settings
from shared.errors import AppError
from shared.logging import configure
from shared.phones import check_phone
from shared.csv_rows import batches as csv_batches, numbered_records
from shared.progress import ProgressLine

log = structlog.get_logger(__name__)

COLUMNS = ("external_id", "name", "email", "phone", "event", "signed_up_at")
INVALID_ROWS_SHOWN = 100


@dataclass
class ImportSummary:
    file: str
    firm_id: int
    rows: int = 0
    inserted: int = 0
    updated: int = 0  # rows whose external_id was stored, with changed fields
    duplicates: int = 0
    invalid: int = 0
    invalid_rows: list[dict[str, Any]] = field(default_factory=list)
    phones: Counter = field(default_factory=Counter)  # phone_status of the rows inserted
    seconds: float = 0.0

    def reject(self, line: int, reason: str) -> None:
        self.invalid += 1
        if len(self.invalid_rows) < INVALID_ROWS_SHOWN:
            self.invalid_rows.append({"line": line, "reason": reason})

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "firm_id": self.firm_id,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "invalid_rows": self.invalid_rows,
            "invalid_rows_truncated": self.invalid > len(self.invalid_rows),
            "phones": {s: self.phones.get(s, 0) for s in ("valid", "invalid", "missing")},
            "lookups": 0,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows / self.seconds) if self.seconds > 0 else None,
        }


# ---- reading -----------------------------------------------------------------------------

def _header(reader: Any) -> dict[str, int]:
    """Column name -> index for the known columns; the first non-blank row is the header."""
    for names in reader:
        if not any(cell.strip() for cell in names):
            continue
        index: dict[str, int] = {}
        for i, name in enumerate(names):
            key = name.strip().lower()
            if key in COLUMNS and key not in index:
                index[key] = i
        if "external_id" not in index:
            raise AppError(f"the CSV header has no external_id column (expected columns: {', '.join(COLUMNS)})",
                           code="bad_csv")
        index["__width__"] = len(names)
        return index
    raise AppError("the CSV file is empty (expected a header row)", code="bad_csv")


def staged_rows(text: TextIO, region: str, summary: ImportSummary) -> Iterator[tuple]:
    """Each valid row as a staging record `(line, *queries.STAGING_COLUMNS)`; malformed rows
    are recorded in `summary` and skipped."""
    reader = csv.reader(text)
    index = _header(reader)
    width = index.pop("__width__")

    def unreadable(line: int, reason: str) -> None:
        summary.rows += 1
        summary.reject(line, reason)

    for line, values in numbered_records(reader, unreadable):
        if not values:  # a blank line
            continue
        summary.rows += 1
        if len(values) != width:
            summary.reject(line, f"expected {width} fields, found {len(values)}")
            continue
        try:
            lead = lead_from_row({name: values[i] for name, i in index.items()})
        except LeadInputError as exc:
            summary.reject(line, exc.message)
            continue
        check = check_phone(lead.phone_raw, region)
        yield (line, lead.external_id, lead.name, lead.email, lead.event, lead.phone_raw,
               check.e164, check.status, check.error, lead.signed_up_at)


# ---- progress ----------------------------------------------------------------------------

class Progress(ProgressLine):
    """The import's progress line (shared/progress.py) with its counts."""

    def __init__(self, stream: TextIO | None, total_bytes: int) -> None:
        super().__init__(stream, total_bytes, "import")

    def update(self, done_bytes: int, summary: ImportSummary, *, final: bool = False) -> None:
        self.show(done_bytes, lambda elapsed: (
            f"{summary.rows:,} rows  inserted {summary.inserted:,}  duplicates {summary.duplicates:,}  "
            f"invalid {summary.invalid:,}  {summary.rows / elapsed:,.0f} rows/s"), final=final)


# ---- the import --------------------------------------------------------------------------

async def import_file(dsn: str, firm_id: int, path: str, *, batch_size: int = 1000,
                      progress_stream: TextIO | None = None) -> ImportSummary:
    from shared.db import connect

    if batch_size < 1:
        raise AppError("--batch-size must be at least 1", code="bad_batch_size")
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise AppError(f"cannot read {path}: {exc.strerror}", code="bad_file") from None
    summary = ImportSummary(file=path, firm_id=firm_id)
    started = time.monotonic()
    conn = await connect(dsn)
    try:
        region = await queries.firm_region(conn, firm_id)
        if region is None:
            raise AppError(f"no firm with id {firm_id}", code="no_firm")
        await queries.create_import_staging(conn)
        progress = Progress(progress_stream, os.fstat(raw.fileno()).st_size)
        # Bad bytes become lone surrogates, which validation reports as not UTF-8 for that row.
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        batches = csv_batches(staged_rows(text, region, summary), batch_size)
        # Read and validate the next batch on a thread while this one is being stored:
        # the database works while Python parses. One batch ahead, so memory stays flat.
        # The reader holds the GIL most of the time; a short switch interval lets the
        # loop answer the database promptly (about 25% faster than the 5 ms default).
        loop = asyncio.get_running_loop()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-read") as reader:
                ahead = loop.run_in_executor(reader, next, batches, None)
                while (batch := await ahead) is not None:
                    ahead = loop.run_in_executor(reader, next, batches, None)
                    await _store_batch(conn, firm_id, batch, summary)
                    progress.update(raw.tell(), summary)
        finally:
            sys.setswitchinterval(switch_interval)
        summary.seconds = time.monotonic() - started
        progress.update(raw.tell(), summary, final=True)
    finally:
        raw.close()
        await conn.close()
    log.info("import_finished", **{k: v for k, v in summary.as_json().items() if k != "invalid_rows"})
    return summary


async def _store_batch(conn: Any, firm_id: int, batch: list[tuple], summary: ImportSummary) -> None:
    async with conn.transaction():
        await queries.copy_import_batch(conn, batch)
        inserted = await queries.insert_import_batch(conn, firm_id)
        updated = await queries.update_import_batch(conn, firm_id)
        phones = {r["phone_e164"] for r in inserted if r["phone_e164"] is not None}
        for row in updated:  # both phones of a moved signup relink; the old one's schedule is off
            phones.update(p for p in (row["old_phone"], row["phone_e164"]) if p is not None)
            if row["old_phone"] is not None and row["old_phone"] != row["phone_e164"]:
                await queries.cancel_scheduled_to_phone(conn, firm_id, row["id"], row["old_phone"])
        if phones:
            await conversation_queries.relink_conversations(conn, firm_id, sorted(phones))
        # one summary event per batch, not one per lead: a portal reloads its lists
        statuses: dict[str, int] = {}
        for r in inserted:
            statuses[r["phone_status"]] = statuses.get(r["phone_status"], 0) + 1
        await events.record(conn, firm_id, "leads.imported", {
            "rows": len(batch), "inserted": len(inserted), "updated": len(updated),
            "duplicates": len(batch) - len(inserted) - len(updated),
            "phone_status": statuses,
        })
    summary.inserted += len(inserted)
    summary.updated += len(updated)
    summary.duplicates += len(batch) - len(inserted) - len(updated)
    summary.phones.update(r["phone_status"] for r in inserted)


def cmd_import(args: argparse.Namespace) -> int:
    settings = Settings.for_command("import")
    configure(settings.log_format, settings.log_level)
    summary = asyncio.run(import_file(
        settings.database_url, args.firm, args.file,
        batch_size=args.batch_size,
        progress_stream=None if args.no_progress else sys.stderr,
    ))
    print(json.dumps(summary.as_json()), flush=True)
    return 0
