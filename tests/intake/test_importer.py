"""`leadsms import FILE.csv --firm ID`: in process for what it stores and reports, and as
the real command for its output and its memory."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from intake.importer import INVALID_ROWS_SHOWN, Progress, ImportSummary, import_file
from conversations.queries import upsert_conversation
from shared.errors import AppError
from tests.conftest import last_json_line
from tests.intake.helpers import post_lead, sim_lookups
from tests.support import ROOT, run_leadsms_measured

HEADER = "external_id,name,email,phone,event,signed_up_at\n"


def write(tmp_path: Path, text: str, name: str = "leads.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


# write_rows' phones, and no other test's
IMPORTED_PHONES = r"^\+121[234]20[0-9]"


def write_rows(path: Path, count: int, *, start: int = 0) -> str:
    """`count` well-formed rows with distinct valid phones (+1212200..., +1213200...)."""
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["external_id", "name", "email", "phone", "event", "signed_up_at"])
        for i in range(start, start + count):
            out.writerow([f"old-{i}", f"Person {i}", f"p{i}@example.com",
                          f"({212 + i % 3}) {200 + (i // 10000) % 800:03d}-{i % 10000:04d}",
                          "Spring seminar", f"2023-{i % 12 + 1:02d}-01T10:00:00Z"])
    return str(path)


async def test_an_import_stores_valid_rows_reports_bad_ones_by_line_and_calls_no_lookup(
        tmp_path, settings, pool, firm, http, sim):
    _, existing = await post_lead(http, firm, external_id="dup-db")
    text = (
        "External_ID,Name,Email,Phone,Event,Signed_Up_At,ignored\n"     # line 1: header, any case, extra column
        "a-1,Ann,ann@example.com,(212) 555-0142,Gala,2024-05-01T10:00:00Z,x\n"  # 2 valid
        "a-2,Bob,,,Gala,,x\n"                                             # 3 stored, phone missing
        "a-3,Cy,,1234567890,Gala,,x\n"                                    # 4 stored, phone invalid (sequential)
        ",No Id,,2125550143,Gala,,x\n"                                    # 5 malformed: no external_id
        "a-4,Naive,,2125550144,Gala,2024-05-01 10:00:00,x\n"              # 6 malformed: naive time
        "a-5,Too,many,2125550145,Gala,,x,extra\n"                         # 7 malformed: field count
        "\n"                                                              # 8 blank: skipped
        'a-6,"Multi\nLine",,2125550146,Gala,,x\n'                         # 9-10 valid, one record
        f"a-7,{'N' * 201},,2125550147,Gala,,x\n"                          # 11 malformed: name too long
        "a-1,Ann again,,2125550142,Gala,,x\n"                             # 12 a later line of a-1: an update
        "dup-db,Already,,2125550148,Gala,,x\n"                            # 13 the hook's lead, changed: an update
    )
    summary = await import_file(settings.database_url, firm.id, write(tmp_path, text))

    assert (summary.rows, summary.inserted, summary.updated, summary.duplicates, summary.invalid) == (10, 4, 2, 0, 4)
    assert [r["line"] for r in summary.invalid_rows] == [5, 6, 7, 11]
    reasons = [r["reason"] for r in summary.invalid_rows]
    assert "external_id is required" in reasons[0]
    assert "no timezone" in reasons[1]
    assert reasons[2] == "expected 7 fields, found 8"
    assert "name must be at most 200" in reasons[3]
    assert dict(summary.phones) == {"valid": 2, "missing": 1, "invalid": 1}
    rows = {r["external_id"]: r for r in await pool.fetch("SELECT * FROM leads WHERE firm_id = $1", firm.id)}
    assert set(rows) == {"dup-db", "a-1", "a-2", "a-3", "a-6"}
    assert (rows["a-1"]["phone_status"], rows["a-1"]["phone_e164"], rows["a-1"]["name"]) == (
        "valid", "+12125550142", "Ann again")
    assert rows["a-1"]["signed_up_at"].isoformat() == "2024-05-01T10:00:00+00:00"
    assert (rows["a-2"]["phone_status"], rows["a-2"]["phone_raw"]) == ("missing", None)
    assert (rows["a-3"]["phone_status"], rows["a-3"]["phone_error"]) == ("invalid", "sequential")
    assert rows["a-6"]["name"] == "Multi\nLine"
    assert (rows["dup-db"]["id"], rows["dup-db"]["name"], rows["dup-db"]["phone_e164"]) == (
        existing["lead_id"], "Already", "+12125550148")
    imported = ["+12125550142", "+12125550146"]
    assert await pool.fetchval("SELECT count(*) FROM phone_lines WHERE phone_e164 = ANY($1)", imported) == 0
    assert [x for x in await sim_lookups(sim) if x["phone_number"] in imported] == []


async def test_running_an_import_again_stores_nothing_new(tmp_path, settings, pool, firm):
    path = write_rows(tmp_path / "again.csv", 50)
    first = await import_file(settings.database_url, firm.id, path, batch_size=7)
    second = await import_file(settings.database_url, firm.id, path, batch_size=7)

    assert (first.inserted, first.updated, first.duplicates) == (50, 0, 0)
    assert (second.inserted, second.updated, second.duplicates) == (0, 0, 50)
    assert await pool.fetchval("SELECT count(*) FROM leads") == 50


async def test_an_imported_newer_signup_takes_the_conversation_and_a_known_invalid_phone_lands_invalid(
        tmp_path, settings, pool, firm):
    await pool.execute(
        "INSERT INTO leads (firm_id, external_id, phone_raw, phone_e164, phone_status, signed_up_at) "
        "VALUES ($1, 'hook-1', '2125550150', '+12125550150', 'valid', '2023-01-01Z')", firm.id)
    async with pool.acquire() as conn:
        conv_id, _ = await upsert_conversation(conn, firm.id, "+12125550150")
    await pool.execute("INSERT INTO phone_lines (phone_e164, valid) VALUES ('+12125550451', false)")
    path = write(tmp_path, HEADER + "imp-1,Newer,,212 555 0150,Gala,2024-01-01T00:00:00Z\n"
                                    "imp-2,Older,,212 555 0150,Gala,2022-01-01T00:00:00Z\n"
                                    "imp-3,Bad,,212 555 0451,Gala,\n")

    await import_file(settings.database_url, firm.id, path)

    newest = await pool.fetchval("SELECT id FROM leads WHERE external_id = 'imp-1'")
    assert await pool.fetchval("SELECT lead_id FROM conversations WHERE id = $1", conv_id) == newest
    bad = await pool.fetchrow("SELECT phone_status, phone_error FROM leads WHERE external_id = 'imp-3'")
    assert tuple(bad) == ("invalid", "lookup_invalid")


async def test_invalid_rows_shown_are_capped_but_all_counted(tmp_path, settings, pool, firm):
    rows = "".join(f",nobody {i},,,,\n" for i in range(INVALID_ROWS_SHOWN + 30))
    summary = await import_file(settings.database_url, firm.id, write(tmp_path, HEADER + rows))
    report = summary.as_json()
    assert report["invalid"] == INVALID_ROWS_SHOWN + 30
    assert len(report["invalid_rows"]) == INVALID_ROWS_SHOWN and report["invalid_rows_truncated"] is True


async def test_bad_bytes_make_a_row_invalid_not_the_import(tmp_path, settings, pool, firm):
    data = (HEADER + "b-1,Ann,,2125550160,Gala,\n").encode() + b"b-2,\xff\xfe,,2125550161,Gala,\n" + \
        "b-3,Cy,,2125550162,Gala,\n".encode()
    summary = await import_file(settings.database_url, firm.id, write(tmp_path, data))
    assert (summary.inserted, summary.invalid) == (2, 1)
    assert summary.invalid_rows == [{"line": 3, "reason": "name is not valid UTF-8 text."}]


async def test_a_row_the_csv_reader_cannot_read_is_reported_and_the_next_row_still_stored(tmp_path, settings, pool, firm):
    text = HEADER + f"c-1,{'x' * 200_000},,2125550170,Gala,\n" + "c-2,Bob,,2125550171,Gala,\n"
    summary = await import_file(settings.database_url, firm.id, write(tmp_path, text))
    assert (summary.inserted, summary.invalid) == (1, 1)
    assert summary.invalid_rows[0]["line"] == 2 and "field larger than field limit" in summary.invalid_rows[0]["reason"]


@pytest.mark.parametrize(("text", "words"), [("", "empty"), ("name,phone\nAnn,2125550142\n", "no external_id")])
async def test_a_file_without_a_usable_header_is_refused(tmp_path, settings, pool, firm, text, words):
    with pytest.raises(AppError, match=words):
        await import_file(settings.database_url, firm.id, write(tmp_path, text))
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0


async def test_an_unknown_firm_or_file_is_refused(tmp_path, settings, pool, firm):
    with pytest.raises(AppError, match="no firm with id 999"):
        await import_file(settings.database_url, 999, write(tmp_path, HEADER))
    with pytest.raises(AppError, match="cannot read"):
        await import_file(settings.database_url, firm.id, str(tmp_path / "nope.csv"))


def test_progress_on_a_terminal_redraws_one_line():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    progress = Progress(out, total_bytes=1000)
    summary = ImportSummary(file="f", firm_id=1, rows=500, inserted=480, duplicates=15, invalid=5)
    progress.update(500, summary)
    progress.update(1000, summary, final=True)
    text = out.getvalue()
    assert text.startswith("\r[############............] import  50.0%  500 rows  inserted 480  duplicates 15  invalid 5")
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1


def test_progress_off_a_terminal_is_plain_lines_and_none_is_silent():
    out = io.StringIO()
    progress = Progress(out, total_bytes=0)
    summary = ImportSummary(file="f", firm_id=1, rows=3)
    progress.update(10, summary)
    progress.update(10, summary)  # within PLAIN_EVERY_S: not repeated
    progress.update(10, summary, final=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("import 100.0%  3 rows") for line in lines)
    assert "\r" not in out.getvalue()
    Progress(None, 10).update(5, summary, final=True)  # --no-progress: nothing to write to


# ---- the real command --------------------------------------------------------------------

def run_import(settings, *args: str) -> tuple[dict, str, int]:
    """The command in a fresh process: (summary JSON, stderr, peak RSS in KB)."""
    stdout, stderr, rss = run_leadsms_measured(settings.database_url, "import", *args)
    return last_json_line(stdout), stderr, rss


async def test_the_command_prints_progress_on_stderr_and_the_summary_last_on_stdout(tmp_path, settings, firm):
    path = write_rows(tmp_path / "cli.csv", 30)
    summary, stderr, _ = run_import(settings, path, "--firm", str(firm.id), "--batch-size", "8")
    assert (summary["inserted"], summary["duplicates"], summary["invalid"], summary["lookups"]) == (30, 0, 0, 0)
    assert summary["invalid_rows"] == [] and summary["rows_per_s"] > 0
    assert any(line.startswith("import 100.0%  30 rows  inserted 30") for line in stderr.splitlines())

    quiet, stderr, _ = run_import(settings, path, "--firm", str(firm.id), "--no-progress")
    assert quiet["duplicates"] == 30
    assert not any(line.startswith("import ") for line in stderr.splitlines())


async def test_the_command_explains_a_missing_firm_in_one_line(tmp_path, settings):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": settings.database_url}
    proc = subprocess.run([sys.executable, "-m", "shared.cli", "import", write(tmp_path, HEADER), "--firm", "4242"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "leadsms: no firm with id 4242"


async def test_importing_ten_times_the_rows_takes_no_more_memory_and_no_lookup(tmp_path, settings, firm, sim):
    small = write_rows(tmp_path / "small.csv", 2_000)
    large = write_rows(tmp_path / "large.csv", 20_000, start=2_000)

    small_summary, _, small_rss = run_import(settings, small, "--firm", str(firm.id), "--no-progress")
    large_summary, _, large_rss = run_import(settings, large, "--firm", str(firm.id), "--no-progress")

    assert (small_summary["inserted"], large_summary["inserted"]) == (2_000, 20_000)
    # Peak RSS of the whole process: interpreter, libraries and one batch. Ten times the
    # rows may cost allocator noise, not rows.
    assert large_rss - small_rss < 8 * 1024, (small_rss, large_rss)
    assert [x for x in await sim_lookups(sim) if re.match(IMPORTED_PHONES, x["phone_number"])] == []


async def test_an_import_updates_changed_signups_relinks_both_phones_and_cancels_the_old_schedule(
        tmp_path, settings, pool, firm, make_firm):
    other = await make_firm()
    for f in (firm, other):
        await pool.execute(
            "INSERT INTO leads (firm_id, external_id, name, phone_raw, phone_e164, phone_status, signed_up_at) "
            "VALUES ($1, 'crm-9', 'Old Name', '2125550160', '+12125550160', 'valid', '2023-01-01Z')", f.id)
    lead_id = await pool.fetchval("SELECT id FROM leads WHERE firm_id = $1", firm.id)
    async with pool.acquire() as conn:
        old_conv, _ = await upsert_conversation(conn, firm.id, "+12125550160")
        new_conv, _ = await upsert_conversation(conn, firm.id, "+12125550161")
    scheduled = await pool.fetchval(
        "INSERT INTO messages (firm_id, conversation_id, direction, body, status, send_at) "
        "VALUES ($1, $2, 'out', 'Reminder', 'scheduled', now() + interval '1 day') RETURNING id", firm.id, old_conv)
    path = write(tmp_path, HEADER + "crm-9,New Name,,212 555 0161,Gala,\n")

    summary = await import_file(settings.database_url, firm.id, path)

    assert (summary.inserted, summary.updated, summary.duplicates) == (0, 1, 0)
    row = await pool.fetchrow("SELECT * FROM leads WHERE id = $1", lead_id)
    assert (row["name"], row["phone_e164"], row["phone_status"], row["signed_up_at"].year) == (
        "New Name", "+12125550161", "valid", 2023)
    links = dict(await pool.fetch("SELECT id, lead_id FROM conversations WHERE firm_id = $1", firm.id))
    assert links == {old_conv: None, new_conv: lead_id}
    assert await pool.fetchval("SELECT status FROM messages WHERE id = $1", scheduled) == "canceled"
    theirs = await pool.fetchrow("SELECT name, phone_e164 FROM leads WHERE firm_id = $1", other.id)
    assert tuple(theirs) == ("Old Name", "+12125550160")
    again = await import_file(settings.database_url, firm.id, write(tmp_path, HEADER + "crm-9,New Name,,(212) 555-0161,Gala,\n"))
    assert (again.updated, again.duplicates) == (0, 1)  # the same number written another way
