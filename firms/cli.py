"""`leadsms firm …`: managing firms from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json

from firms.service import add_firm, set_firm, set_firm_hours
from shared.config import Settings
from shared.logging import configure


def cmd_firm_add(args: argparse.Namespace) -> int:
    settings = Settings.for_command("firm")
    configure(settings.log_format, settings.log_level)
    result = asyncio.run(add_firm(settings.database_url, args.name, args.number, args.region,
                                  quiet_hours=settings.quiet_hours))
    print(json.dumps(result))
    return 0


def cmd_firm_hours(args: argparse.Namespace) -> int:
    settings = Settings.for_command("firm")
    configure(settings.log_format, settings.log_level)
    result = asyncio.run(set_firm_hours(settings.database_url, args.firm, timezone=args.timezone,
                                        quiet_hours=args.quiet_hours))
    print(json.dumps(result))
    return 0


def cmd_firm_set(args: argparse.Namespace) -> int:
    settings = Settings.for_command("firm")
    configure(settings.log_format, settings.log_level)
    result = asyncio.run(set_firm(settings.database_url, args.firm, help_text=args.help_text))
    print(json.dumps(result))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("firm", help="manage firms")
    firm_sub = p.add_subparsers(dest="firm_command", required=True, metavar="ACTION")
    fa = firm_sub.add_parser("add", help="create a firm; prints JSON with firm_id and api_key")
    fa.add_argument("--name", required=True)
    fa.add_argument("--number", required=True, help="the firm's SMS number, E.164 (+1...)")
    fa.add_argument("--region", default="US", help="default region for leads' phones")
    fa.set_defaults(run=cmd_firm_add)
    fs = firm_sub.add_parser("set", help="change a firm's settings; only the options given change")
    fs.add_argument("--firm", type=int, required=True)
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
