"""`leadsms firm …`: managing firms from the command line.

Each command prints its result as JSON on its last line. A subaccount's auth token is
read from standard input (`--auth-token-stdin`), never from the command line, where it
would sit in the shell history and the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from firms import service
from shared.config import Settings
from shared.errors import AppError
from shared.logging import configure


def _settings() -> Settings:
    settings = Settings.for_command("firm")
    configure(settings.log_format, settings.log_level)
    return settings


def _print(result: dict[str, Any]) -> int:
    print(json.dumps(result))
    return 0


def cmd_firm_add(args: argparse.Namespace) -> int:
    settings = _settings()
    return _print(asyncio.run(service.add_firm(settings.database_url, args.name, args.number, args.region,
                                               quiet_hours=settings.quiet_hours)))


def cmd_firm_hours(args: argparse.Namespace) -> int:
    settings = _settings()
    return _print(asyncio.run(service.set_firm_hours(settings.database_url, args.firm, timezone=args.timezone,
                                                     quiet_hours=args.quiet_hours)))


def cmd_firm_number(args: argparse.Namespace) -> int:
    settings = _settings()
    return _print(asyncio.run(service.change_number(settings.database_url, args.firm, args.number_action, args.number)))


def read_token(stream: Any) -> str:
    token = stream.readline().strip()
    if not token:
        raise AppError("--auth-token-stdin: no token on standard input", code="no_token")
    return token


def cmd_firm_set(args: argparse.Namespace) -> int:
    """Each option changes its part only; options other parts of the project add to `set`
    (e.g. --help-text) are handled next to these, in the same command."""
    settings = _settings()
    token = read_token(sys.stdin) if args.auth_token_stdin else None
    result: dict[str, Any] = {"firm_id": args.firm}
    if args.messaging_service is not None or args.account_sid is not None or token is not None:
        result = asyncio.run(service.set_identity(
            settings.database_url, args.firm, credentials_key=settings.credentials_key,
            messaging_service=args.messaging_service, account_sid=args.account_sid, auth_token=token,
        ))
    if args.help_text is not None:
        result |= asyncio.run(service.set_firm(settings.database_url, args.firm, help_text=args.help_text))
    return _print(result)


def cmd_firm_rotate_key(args: argparse.Namespace) -> int:
    settings = _settings()
    grace = service.parse_grace(args.grace)
    return _print(asyncio.run(service.rotate_key(settings.database_url, args.firm, grace)))


def cmd_firm_resume(args: argparse.Namespace) -> int:
    settings = _settings()
    return _print(asyncio.run(service.resume(settings.database_url, args.firm)))


def add_parser(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """`leadsms firm …`; returns its actions so composition can add those of higher
    layers (`firm delete`, which erases people: intake/offboarding.py)."""
    p = sub.add_parser("firm", help="manage firms")
    firm_sub = p.add_subparsers(dest="firm_command", required=True, metavar="ACTION")
    fa = firm_sub.add_parser("add", help="create a firm; prints JSON with firm_id and api_key")
    fa.add_argument("--name", required=True)
    fa.add_argument("--number", required=True, help="the firm's SMS number, E.164 (+1...)")
    fa.add_argument("--region", default="US", help="default region for leads' phones")
    fa.set_defaults(run=cmd_firm_add)

    fn = firm_sub.add_parser("number", help="the firm's numbers: add, remove, make default (history kept)")
    fn.add_argument("number_action", choices=("add", "remove", "default"))
    fn.add_argument("--firm", type=int, required=True)
    fn.add_argument("--number", required=True, help="E.164 (+1...)")
    fn.set_defaults(run=cmd_firm_number)

    fs = firm_sub.add_parser("set", help="the firm's Twilio sending identity, subaccount and HELP reply; "
                                         "only the options given change")
    fs.add_argument("--firm", type=int, required=True)
    fs.add_argument("--messaging-service", metavar="MG…",
                    help="send through this Messaging Service instead of a From number (none: back to numbers)")
    fs.add_argument("--account-sid", metavar="AC…",
                    help="the firm's own Twilio subaccount (none: the main account); needs --auth-token-stdin")
    fs.add_argument("--auth-token-stdin", action="store_true", help="read the subaccount's auth token from stdin")
    fs.add_argument("--help-text", default=None, metavar="TEXT",
                    help="the reply to HELP/INFO when Twilio's Advanced Opt-Out does not answer it "
                         "(an empty TEXT restores the default, which names the firm)")
    fs.set_defaults(run=cmd_firm_set)

    fh = firm_sub.add_parser("hours", help="the firm's zone and texting hours; prints them as JSON")
    fh.add_argument("--firm", type=int, required=True)
    fh.add_argument("--timezone", help="IANA zone, like America/Chicago ('auto': the number's area code's)")
    fh.add_argument("--quiet-hours", dest="quiet_hours",
                    help="texting hours in the lead's local time, HH:MM-HH:MM (00:00-24:00 = always)")
    fh.set_defaults(run=cmd_firm_hours)

    fr = firm_sub.add_parser("rotate-key", help="a new API key (JSON); the old one works until the grace ends")
    fr.add_argument("--firm", type=int, required=True)
    fr.add_argument("--grace", default="24h", help="how long the old key keeps working (24h, 90m, 0)")
    fr.set_defaults(run=cmd_firm_rotate_key)

    fu = firm_sub.add_parser("resume", help="resume sending paused by an account-level Twilio error")
    fu.add_argument("--firm", type=int, required=True)
    fu.set_defaults(run=cmd_firm_resume)
    return firm_sub
