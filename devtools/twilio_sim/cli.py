"""`leadsms twilio-sim [serve] [--host H] [--port N]` and `leadsms twilio-sim inbound --from … --to … --body …`.

Both read TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN / PUBLIC_BASE_URL through `Settings`, so
the simulator accepts, and signs with, the credentials the web and workers use.
`inbound` needs no running simulator: it signs and POSTs the text itself, prints the
answer as JSON and exits 0 when our webhook answered 2xx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Sequence

import aiohttp
import structlog

from shared.config import Settings
from devtools.twilio_sim.config import DEFAULT_HOST, DEFAULT_PORT, SimConfig
from devtools.twilio_sim.signing import OPT_OUT_TYPES, deliver_inbound

log = structlog.get_logger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadsms twilio-sim", description="The Twilio simulator.")
    parser.add_argument("--host", default=None, help=f"default {DEFAULT_HOST}")
    parser.add_argument("--port", type=int, default=None, help=f"default {DEFAULT_PORT}")
    parser.add_argument("--callback-delay", type=float, default=None, metavar="S",
                        help="seconds before each status callback (default 0.2)")
    parser.add_argument("--late-delay", type=float, default=None, metavar="S",
                        help="lateness of the 07xx scenario (default 2.0)")
    parser.add_argument("--no-callbacks", action="store_true", help="send no status callbacks")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    inbound = sub.add_parser("inbound", help="deliver a signed inbound text to PUBLIC_BASE_URL/twilio/inbound")
    inbound.add_argument("--from", dest="from_", required=True, help="the lead's number, E.164")
    inbound.add_argument("--to", required=True, help="the firm's number, E.164")
    inbound.add_argument("--body", required=True)
    inbound.add_argument("--opt-out-type", choices=OPT_OUT_TYPES, default=None,
                         help="send Advanced Opt-Out's OptOutType with the text")
    inbound.add_argument("--public-base-url", default=None, help="default: $PUBLIC_BASE_URL")
    return parser


def _settings() -> Settings:
    from shared.logging import configure

    settings = Settings.for_command("twilio-sim")
    configure(settings.log_format, settings.log_level)
    return settings


async def send_inbound(config: SimConfig, from_: str, to: str, body: str, opt_out_type: str | None = None) -> dict:
    async with aiohttp.ClientSession() as session:
        url, params, answer = await deliver_inbound(
            session, public_base_url=config.public_base_url, auth_token=config.auth_token,
            account_sid=config.account_sid, from_=from_, to=to, body=body, opt_out_type=opt_out_type,
        )
    return {"url": url, "message_sid": params["MessageSid"], "answer_status": answer.status,
            "answer_body": answer.body, "error": answer.error}


def serve(config: SimConfig, host: str, port: int) -> None:
    from aiohttp import web

    from devtools.twilio_sim.app import create_sim_app

    log.info("twilio_sim_listening", url=f"http://{host}:{port}", account_sid=config.account_sid,
             public_base_url=config.public_base_url, callbacks_enabled=config.callbacks_enabled)
    web.run_app(create_sim_app(config), host=host, port=port, access_log=None, print=None,
                handle_signals=True, shutdown_timeout=2)


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Entry from `shared.cli` (a Namespace whose `sim_args` is the rest of argv), or argv."""
    if isinstance(args, argparse.Namespace):
        argv = list(getattr(args, "sim_args", None) or [])
        outer_host, outer_port = getattr(args, "host", None), getattr(args, "port", None)
    else:
        argv = list(sys.argv[1:] if args is None else args)
        outer_host = outer_port = None
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if argv[:1] == ["serve"]:  # `leadsms twilio-sim serve --port N`: argv options after a word
        argv = argv[1:]
    opts = build_parser().parse_args(argv)
    settings = _settings()
    overrides: dict = {}
    if opts.callback_delay is not None:
        overrides["callback_delay_s"] = opts.callback_delay
    if opts.late_delay is not None:
        overrides["late_delay_s"] = opts.late_delay
    if opts.no_callbacks:
        overrides["callbacks_enabled"] = False
    config = SimConfig.from_settings(settings, **overrides)

    if opts.action == "inbound":
        if opts.public_base_url:
            config = config.updated({"public_base_url": opts.public_base_url})
        result = asyncio.run(send_inbound(config, opts.from_, opts.to, opts.body, opts.opt_out_type))
        print(json.dumps(result))
        status = result["answer_status"]
        return 0 if status is not None and 200 <= status < 300 else 1

    host = opts.host or outer_host or DEFAULT_HOST
    port = opts.port or outer_port or DEFAULT_PORT
    serve(config, host, port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
