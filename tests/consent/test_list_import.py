"""The opt-out list: `leadsms optouts import` end to end, through the real command, the
portal's views and the webhook."""

from __future__ import annotations

import csv
import json

import pytest

from conversations.sendable import NOTICES
from shared.phones import check_phone
from tests.conftest import last_json_line
from tests.consent.support import import_summary, picker, run_optouts, sim_message_requests
from tests.support import run_leadsms_measured
from tests.webhooks.support import open_thread, post_message, send_inbound, settle

pytestmark = pytest.mark.slow  # tens of seconds: `make test` starts it first

LISTED = 10_000
FORMATS = ("+1{a}{e}{n}", "({a}) {e}-{n}", "{a}.{e}.{n}", "1{a}{e}{n}", "{a}-{e}-{n}", "+1 {a} {e} {n}")
UNREADABLE = ("not a phone", "12", "555-0000000", "+1 646 555 12345678901", "(000) 000-0000")


def listed_phones(count: int) -> list[str]:
    """`count` distinct valid US numbers (checked with the hook's own rules)."""
    phones: list[str] = []
    for area in ("646", "212", "718", "917"):
        for exchange in ("555", "556", "557"):
            for n in range(10_000):
                e164 = f"+1{area}{exchange}{n:04d}"
                if check_phone(e164).status == "valid":
                    phones.append(e164)
                if len(phones) == count:
                    return phones
    raise AssertionError("not enough numbers")


def write_list(path, phones: list[str], *, repeats: int) -> dict[str, object]:
    """The CSV (header `phone` in the second column, mixed formats, some rows unreadable,
    `repeats` phones twice); returns what the summary should say."""
    unreadable_lines: list[int] = []
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "phone", "note"])
        line = 1
        for i, e164 in enumerate(phones):
            a, e, n = e164[2:5], e164[5:8], e164[8:]
            writer.writerow([f"Person {i}", FORMATS[i % len(FORMATS)].format(a=a, e=e, n=n), "x"])
            line += 1
            if i % 1000 == 500:
                writer.writerow([f"Junk {i}", UNREADABLE[(i // 1000) % len(UNREADABLE)], ""])
                line += 1
                unreadable_lines.append(line)
            if i < repeats:
                writer.writerow([f"Again {i}", e164, ""])
                line += 1
    return {"rows": len(phones) + repeats + len(unreadable_lines), "added": len(phones),
            "already_opted_out": repeats, "unreadable": len(unreadable_lines), "lines": unreadable_lines}


async def add_listed_leads(pool, firm_id: int, phones: list[str]) -> None:
    await pool.execute(
        """
        INSERT INTO leads (firm_id, external_id, name, phone_raw, phone_e164, phone_status)
        SELECT $1, 'l' || n, 'Listed Lead ' || n, p, p, 'valid' FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n)
        """,
        firm_id, phones,
    )


async def test_a_ten_thousand_phone_list_is_imported_once_and_every_listed_lead_is_unreachable(
        tmp_path, http, settings, deps, pool, firm, sim):
    phones = listed_phones(LISTED)
    expected = write_list(tmp_path / "old-provider.csv", phones, repeats=300)
    await add_listed_leads(pool, firm.id, phones)
    control = await pool.fetchval(
        "INSERT INTO leads (firm_id, external_id, name, phone_raw, phone_e164, phone_status) "
        "VALUES ($1, 'control', 'Listed Lead Control', '+13125550188', '+13125550188', 'valid') RETURNING id", firm.id)
    texted = next(p for p in phones if p.endswith("2345"))  # the simulator's plain mobile row
    thread = await open_thread(http, pool, firm, texted, external_id="thread-lead")

    summary = import_summary(settings, str(tmp_path / "old-provider.csv"), firm.id)
    assert summary["source"] == "list:old-provider.csv"
    assert {k: summary[k] for k in ("rows", "added", "already_opted_out", "unreadable")} == {
        k: expected[k] for k in ("rows", "added", "already_opted_out", "unreadable")}
    assert [r["line"] for r in summary["unreadable_rows"]] == expected["lines"]
    assert summary["skipped_removed"] == 0 and summary["batches"] == 11

    again = import_summary(settings, str(tmp_path / "old-provider.csv"), firm.id)
    assert (again["added"], again["already_opted_out"]) == (0, LISTED + 300)
    assert await pool.fetchval("SELECT count(*) FROM consent_events WHERE firm_id = $1", firm.id) == LISTED
    assert await pool.fetchval(
        "SELECT count(*) FROM phone_flags WHERE firm_id = $1 AND opted_out AND opted_out_source = 'list:old-provider.csv'",
        firm.id) == LISTED

    # the picker shows only the one lead not on the list, however the phone is typed
    assert [i["lead_id"] for i in await picker(http, firm, "Listed Lead")] == [control]
    assert await picker(http, firm, phones[42][2:]) == []
    async with http.get(f"/v1/conversations/{thread}", headers=firm.headers) as r:
        opened = await r.json()
    assert (opened["can_send"], opened["notice"]) == (False, NOTICES["opted_out"].as_json())
    status, refused = await post_message(http, firm, thread, "Doors open at 6pm")
    assert (status, refused["code"], refused["error"]) == (409, "opted_out", NOTICES["opted_out"].text)
    listed = set(phones)
    assert [m for m in await sim_message_requests(sim) if m.get("to") in listed] == []

    # the lead, and only the lead, lifts it by texting START
    assert (await send_inbound(http, settings, from_=texted, to=firm.number, body="START")).status == 200
    await settle(deps)
    async with http.get(f"/v1/conversations/{thread}", headers=firm.headers) as r:
        assert (await r.json())["can_send"] is True
    history = await pool.fetch("SELECT kind, source FROM consent_events WHERE phone_e164 = $1 ORDER BY id", texted)
    assert [(h["kind"], h["source"]) for h in history] == [("opt_out", "list:old-provider.csv"), ("opt_in", "keyword:start")]


async def test_a_phone_staff_removed_is_not_re_added_unless_forced(tmp_path, http, settings, pool, firm):
    path = tmp_path / "crm.csv"
    path.write_text("+16465551201\n(646) 555-1202\n")
    first = import_summary(settings, str(path), firm.id, "--source", "crm-dnt", "--no-progress")
    assert (first["source"], first["added"], first["rows"]) == ("list:crm-dnt", 2, 2)
    async with http.delete("/v1/opt-outs/%2B16465551202", headers=firm.user("staff-3")) as r:
        assert r.status == 204, await r.text()

    again = import_summary(settings, str(path), firm.id, "--source", "crm-dnt")
    assert (again["added"], again["already_opted_out"], again["skipped_removed"]) == (0, 1, 1)
    forced = import_summary(settings, str(path), firm.id, "--source", "crm-dnt", "--force")
    assert (forced["added"], forced["already_opted_out"], forced["skipped_removed"]) == (1, 1, 0)
    assert await pool.fetchval("SELECT count(*) FROM optout_removals") == 0


async def test_the_import_shows_a_progress_line_and_the_export_writes_the_same_list(tmp_path, settings, firm):
    path = tmp_path / "list.csv"
    path.write_text("Mobile\n646-555-1301\n646 555 1302\nnope\n")
    proc = run_optouts(settings, "import", str(path), "--firm", str(firm.id))
    assert proc.returncode == 0, proc.stderr
    assert any(line.startswith("optouts import 100.0%  3 rows  added 2") for line in proc.stderr.splitlines())
    assert json.loads(proc.stdout.strip().splitlines()[-1])["unreadable_rows"] == [
        {"line": 4, "reason": "not a phone number (unparseable): 'nope'"}]

    exported = run_optouts(settings, "export", "--firm", str(firm.id))
    rows = list(csv.reader(exported.stdout.splitlines()))
    assert rows[0] == ["phone", "source", "at"]
    assert [r[:2] for r in rows[1:]] == [["+16465551301", "list:list.csv"], ["+16465551302", "list:list.csv"]]
    as_json = json.loads(run_optouts(settings, "export", "--firm", str(firm.id), "--format", "json").stdout)
    assert [(i["phone"], i["source"]) for i in as_json] == [(r[0], r[1]) for r in rows[1:]]


async def test_an_unknown_firm_is_one_line_and_nothing_is_written(tmp_path, settings, pool):
    path = tmp_path / "x.csv"
    path.write_text("phone\n+16465551401\n")
    proc = run_optouts(settings, "import", str(path), "--firm", "4242")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "leadsms: no firm with id 4242"
    assert await pool.fetchval("SELECT count(*) FROM consent_events") == 0


async def test_importing_ten_times_the_rows_takes_no_more_memory(tmp_path, settings, firm):
    phones = listed_phones(22_000)
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    small.write_text("phone\n" + "\n".join(phones[:2_000]) + "\n")
    large.write_text("phone\n" + "\n".join(phones[2_000:]) + "\n")
    runs = [run_leadsms_measured(settings.database_url, "optouts", "import", str(path), "--firm", str(firm.id),
                                 "--no-progress") for path in (small, large)]
    (small_out, _, small_rss), (large_out, _, large_rss) = runs
    assert (last_json_line(small_out)["added"], last_json_line(large_out)["added"]) == (2_000, 20_000)
    # Peak RSS of the whole process: interpreter, libraries and one batch. Ten times the
    # rows may cost allocator noise, not rows.
    assert large_rss - small_rss < 8 * 1024, (small_rss, large_rss)
