"""The simulator answers as Twilio's own OpenAPI description says, for the operations
leadsms uses (Messages create, list, fetch, delete; Lookup v2 fetch): schemathesis
generates requests from `twilio-openapi/` (Twilio's trimmed description, MIT, see its
LICENSE) and checks that no answer is a 5xx and every documented answer has the
documented content type and schema.

A few examples per operation in `make test` (seconds); `make faults` runs many
(`TWILIO_CONFORMANCE_EXAMPLES`). Where the description's letter contradicts what Twilio
does, Twilio's behaviour wins, and the test says so: Twilio's `uri` and `*_page_uri`
fields are relative paths although the description gives them `format: uri`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from devtools.twilio_sim import SimConfig, run_sim
from shared.twilio import TwilioClient

pytestmark = pytest.mark.slow  # tens of seconds: `make test` starts it first

SPECS = Path(__file__).resolve().parent / "twilio-openapi"
SID, TOKEN = "AC" + "7" * 32, "conformance-token"
OPERATIONS = ("CreateMessage", "ListMessage", "FetchMessage", "DeleteMessage", "FetchPhoneNumber")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Relative at Twilio (its own examples show "/2010-04-01/Accounts/…"), `format: uri` in the description.
RELATIVE_URI_FIELDS = {"uri", "first_page_uri", "next_page_uri", "previous_page_uri", "media"}


def st_command() -> list[str]:
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        pytest.fail("schemathesis is not installed: pip install -e '.[test]'")
    return [str(st)]


def as_twilio_behaves(spec: dict) -> dict:
    """The description with `format: uri` dropped where Twilio answers a relative path,
    and with the error answers Twilio documents (its description lists none): any 4xx
    with Twilio's error body."""
    def walk(node):
        if isinstance(node, dict):
            for name, value in node.get("properties", {}).items():
                if name in RELATIVE_URI_FIELDS and isinstance(value, dict) and value.get("format") == "uri":
                    value.pop("format")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    # Lookup v2 answers null for every data package not asked for (Twilio's own examples
    # do), where the description says "object".
    for schema in spec.get("components", {}).get("schemas", {}).values():
        if schema.get("type") == "object" and spec["paths"].keys() == {"/v2/PhoneNumbers/{PhoneNumber}"}:
            schema["nullable"] = True
    error = {"description": "Twilio's error body", "content": {"application/json": {"schema": {
        "type": "object", "required": ["code", "message", "more_info", "status"],
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"},
                       "more_info": {"type": "string"}, "status": {"type": "integer"}}}}}}
    for ops in spec["paths"].values():
        for op in ops.values():
            if isinstance(op, dict) and "responses" in op:
                op["responses"].setdefault("4XX", error)
    return spec


async def run_st(spec: Path, url: str, workdir: Path, examples: int) -> tuple[int, str]:
    args = [*st_command(), "run", str(spec), "--url", url, "--checks", CHECKS,
            "--max-examples", str(examples), "--phases", "examples,fuzzing", "--seed", "1",
            "--request-timeout", "10", "--no-color"]
    for operation in OPERATIONS:
        args += ["--include-operation-id", operation]
    proc = await asyncio.create_subprocess_exec(*args, cwd=workdir, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    return proc.returncode, out.decode(errors="replace")


async def conformance(tmp_path: Path, examples: int) -> None:
    async with run_sim(SimConfig(account_sid=SID, auth_token=TOKEN), port=0) as url:
        async with TwilioClient(SID, TOKEN, base_url=url) as twilio:
            sid = (await twilio.send_message(to="+14155554321", from_="+14155559000", body="conformance",
                                             status_callback=None)).sid
        (tmp_path / "schemathesis.toml").write_text(
            f'[auth.basic]\nusername = "{SID}"\npassword = "{TOKEN}"\n\n'
            f'[parameters]\n"path.AccountSid" = "{SID}"\n"path.Sid" = "{sid}"\n')
        for name in ("twilio_api_v2010_messages.json", "twilio_lookups_v2_phonenumbers.json"):
            spec = tmp_path / name
            spec.write_text(json.dumps(as_twilio_behaves(json.loads((SPECS / name).read_text()))))
            code, out = await run_st(spec, url, tmp_path, examples)
            assert code == 0, f"{name}: schemathesis found answers that do not conform:\n{out[-6000:]}"
            assert "generated" in out, out[-2000:]


async def test_the_simulator_answers_as_twilios_openapi_description_says(tmp_path):
    await conformance(tmp_path, int(os.environ.get("TWILIO_CONFORMANCE_EXAMPLES", "5")))


@pytest.mark.faults
async def test_the_simulator_conforms_over_many_generated_requests(tmp_path):
    await conformance(tmp_path, int(os.environ.get("TWILIO_CONFORMANCE_EXAMPLES", "200")))
