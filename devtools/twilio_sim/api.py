"""The part of Twilio's REST API we use: Messages create/list/fetch and Lookup v2.

Shapes, status codes and error bodies are Twilio's, because the real SDK parses them:
an error is `{"code", "message", "more_info", "status"}` with the HTTP status, a create
answers 201, a list is a page with `next_page_uri`. Behaviour per destination comes from
`scenarios.py`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import phonenumbers
from aiohttp import web

from shared.segments import segment_info
from devtools.twilio_sim.accounts import SimAccount
from devtools.twilio_sim.callbacks import progress_message
from devtools.twilio_sim.faults import list_fails, lookup_fails, pick_create_fault
from devtools.twilio_sim.scenarios import CARRIERS, ERROR_429, ERROR_500, CreateError, scenario_for
from devtools.twilio_sim.signing import new_sid
from devtools.twilio_sim.state import SIM_STATE, SimState
from devtools.twilio_sim.store import API_VERSION, SimMessage, now

MAX_BODY = 1600
MAX_VALIDITY_S = 36000
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


def twilio_error(status: int, code: int, message: str, **extra: Any) -> web.Response:
    body = {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status, **extra}
    return web.json_response(body, status=status)


def _credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        login, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (login, password) if sep else None


def account_of(request: web.Request, state: SimState) -> SimAccount | None:
    """The account whose sid/token the request's Basic auth carries, if any."""
    header = request.headers.get("Authorization", "")
    accounts = state.accounts
    account = None
    if header == request.app[EXPECTED_AUTH]:  # the main account's header, precomputed
        account = accounts.by_sid.get(state.config.account_sid)
        if account is not None and account.auth_token != state.config.auth_token:
            account = None
    if account is None:
        creds = _credentials(header)
        account = accounts.authenticate(*creds) if creds else None
    return account


def authenticate(request: web.Request, state: SimState, account_sid: str | None = None) -> web.Response | None:
    """None when Basic auth matches an account's sid/token (and the path's account);
    20003 otherwise, as Twilio answers."""
    account = account_of(request, state)
    if account is None:
        state.store.counters["auth_failures"] += 1
        response = twilio_error(401, 20003, "Authenticate",
                                detail="Your AccountSid or AuthToken was incorrect.")
        response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return response
    if account_sid is not None and account_sid != account.sid:
        return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
    return None


EXPECTED_AUTH = web.AppKey("sim_expected_auth", str)


# ---- Messages ----------------------------------------------------------------------------

def _refuse(state: SimState, error: CreateError, to: str, attempt: dict[str, Any]) -> web.Response:
    state.store.add_attempt(**attempt, outcome="refused", http_status=error.status, error_code=error.code)
    return twilio_error(error.status, error.code, error.message.format(to=to))


async def create_message(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    denied = authenticate(request, state, request.match_info["account_sid"])
    if denied is not None:
        return denied
    account = account_of(request, state)
    assert account is not None
    form = await request.post()
    to, from_ = str(form.get("To") or ""), str(form.get("From") or "")
    body, callback = str(form.get("Body") or ""), form.get("StatusCallback")
    validity = form.get("ValidityPeriod")
    service_sid = str(form.get("MessagingServiceSid") or "") or None
    attempt: dict[str, Any] = {"to": to, "from": from_, "body": body, "status_callback": callback,
                               "validity_period": int(validity) if str(validity or "").isdigit() else None,
                               "account_sid": account.sid, "messaging_service_sid": service_sid}
    if not to:
        return _refuse(state, CreateError(400, 21604, "A 'To' phone number is required."), to, attempt)
    if not from_ and not service_sid:
        return _refuse(state, CreateError(400, 21603, "A 'From' phone number is required."), to, attempt)
    if not _is_phone(to):
        return _refuse(state, CreateError(400, 21211, "The 'To' number {to} is not a valid phone number."), to, attempt)
    if validity is not None and not (str(validity).isdigit() and 1 <= int(str(validity)) <= MAX_VALIDITY_S):
        return _refuse(state, CreateError(400, 21609, "ValidityPeriod must be between 1 and 36000 seconds."), to, attempt)
    if service_sid and not from_:
        pool = account.messaging_services.get(service_sid)
        if pool is None and account.numbers is None and account.sid == state.config.account_sid:
            pool = []  # the unregistered main account: any service, no number of its own
        if pool is None:
            return _refuse(state, CreateError(400, 21705, f"The Messaging Service Sid {service_sid} is invalid."),
                           to, attempt)
        from_ = _sticky_sender(state, service_sid, pool, to)
    elif not account.owns_number(from_):
        return _refuse(state, CreateError(
            400, 21606, f"The From phone number {from_} is not a valid, SMS-capable inbound phone number "
                        "or short code for your account."), to, attempt)
    if state.accounts.is_opted_out(from_, to):
        return _refuse(state, CreateError(400, 21610, "Attempt to send to unsubscribed recipient"), to, attempt)
    if not body and not form.get("MediaUrl"):
        return _refuse(state, CreateError(400, 21602, "Message body is required."), to, attempt)
    if len(body) > MAX_BODY:
        return _refuse(state, CreateError(400, 21617, "The concatenated message body exceeds the 1600 character limit."), to, attempt)

    fault = pick_create_fault(state.config, state.rng, state.burst_429_left)
    if state.config.slow_s:
        await asyncio.sleep(state.config.slow_s)
    if fault is not None:
        state.store.counters[f"fault_{fault}"] += 1
        attempt["fault"] = fault
    if fault == "429":
        state.burst_429_left = max(0, state.burst_429_left - 1)
        return _refuse(state, ERROR_429, to, attempt)
    if fault == "500":
        return _refuse(state, ERROR_500, to, attempt)

    scenario = scenario_for(to)
    attempt["try"] = state.store.next_try(to)
    attempt["scenario"] = scenario.name
    if scenario.late:
        await asyncio.sleep(state.config.late_delay_s)
    if scenario.create_error is not None:
        return _refuse(state, scenario.create_error, to, attempt)
    if attempt["try"] <= scenario.fail_first_tries:
        return _refuse(state, ERROR_500, to, attempt)
    if attempt["try"] <= scenario.rate_limit_first_tries:
        return _refuse(state, ERROR_429, to, attempt)

    encoding, segments = segment_info(body)
    message = SimMessage(
        sid=new_sid("SM"), account_sid=account.sid, to=to, from_=from_, body=body,
        status_callback=str(callback) if callback else None, num_segments=segments,
        encoding=encoding, scenario=scenario.name, date_created=now(),
        validity_period=attempt["validity_period"],
        messaging_service_sid=service_sid, from_shown=not service_sid,
    )
    if service_sid:
        message.status = "accepted"  # Twilio's answer before the service has picked a sender
    state.store.add_message(message)
    state.spawn(progress_message(state, message, scenario))
    if fault == "hang":  # Twilio has it, and the answer comes after the client gave up
        state.store.add_attempt(**attempt, outcome="created_then_hung", http_status=201,
                                error_code=None, sid=message.sid)
        await asyncio.sleep(state.config.hang_s)
        return web.json_response(message.to_twilio(), status=201)
    if attempt["try"] <= scenario.created_but_500_tries or fault == "created_500":
        state.store.add_attempt(**attempt, outcome="created_but_500", http_status=500,
                                error_code=ERROR_500.code, sid=message.sid)
        return twilio_error(ERROR_500.status, ERROR_500.code, ERROR_500.message)
    state.store.add_attempt(**attempt, outcome="created", http_status=201, error_code=None, sid=message.sid)
    return web.json_response(message.to_twilio(), status=201)


def _is_phone(raw: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(raw, None))
    except phonenumbers.NumberParseException:
        return False


def _sticky_sender(state: SimState, service_sid: str, pool: list[str], to: str) -> str:
    """A Messaging Service's sender for `to`: the one it used before (Sticky Sender), else
    the next of its numbers in turn."""
    key = (service_sid, to)
    chosen = state.store.sticky.get(key)
    if chosen is None:
        if not pool:
            pool = ["+15005550006"]  # Twilio's magic test number: the unregistered main account's services
        chosen = pool[len(state.store.sticky) % len(pool)]
        state.store.sticky[key] = chosen
    return chosen


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    try:
        return max(lo, min(hi, int(request.query.get(name, default))))
    except ValueError:
        return default


async def list_messages(request: web.Request) -> web.Response:
    """Newest first, paged by PageSize; PageToken `PA<n>` marks where the next page starts,
    so a page stays stable while new messages arrive."""
    state = request.app[SIM_STATE]
    account_sid = request.match_info["account_sid"]
    denied = authenticate(request, state, account_sid)
    if denied is not None:
        return denied
    state.store.counters["list_requests"] += 1
    if state.config.list_slow_s:
        await asyncio.sleep(state.config.list_slow_s)
    if list_fails(state.config, state.rng):
        state.store.counters["fault_list_500"] += 1
        return twilio_error(ERROR_500.status, ERROR_500.code, ERROR_500.message)
    to, from_ = request.query.get("To"), request.query.get("From")
    try:
        sent_filter = _date_sent_filter(request.query)
    except ValueError as exc:
        return twilio_error(400, 20001, str(exc))
    items = [m for m in state.store.matching(to, from_)
             if m.account_sid == account_sid and (m.from_shown or not from_) and sent_filter(m)]
    size = _int_param(request, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = _int_param(request, "Page", 0, 0, 1 << 30)
    token = request.query.get("PageToken", "")
    upper = len(items) - page * size
    if token.startswith("PA") and token[2:].isdigit():
        upper = int(token[2:])
    upper = max(0, min(upper, len(items)))
    lower = max(0, upper - size)
    chosen = items[lower:upper][::-1]

    base = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
    filters = {k: v for k, v in (("To", to), ("From", from_)) if v}
    query = urlencode({**filters, "PageSize": size})
    next_uri = f"{base}?{query}&Page={page + 1}&PageToken=PA{lower}" if lower > 0 else None
    return web.json_response({
        "messages": [m.to_twilio() for m in chosen],
        "end": page * size + max(len(chosen) - 1, 0),
        "first_page_uri": f"{base}?{query}&Page=0",
        "next_page_uri": next_uri,
        "page": page,
        "page_size": size,
        "previous_page_uri": None if page == 0 else f"{base}?{query}&Page={page - 1}",
        "start": page * size,
        "uri": request.path_qs,
    })


def _own_message(request: web.Request) -> SimMessage | web.Response:
    """The path's message of the authenticated account, or Twilio's 401/404."""
    state = request.app[SIM_STATE]
    denied = authenticate(request, state, request.match_info["account_sid"])
    if denied is not None:
        return denied
    message = state.store.by_sid.get(request.match_info["sid"])
    if message is None or message.account_sid != request.match_info["account_sid"]:
        return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
    return message


async def fetch_message(request: web.Request) -> web.Response:
    message = _own_message(request)
    if isinstance(message, web.Response):
        return message
    return web.json_response(message.to_twilio())


async def delete_message(request: web.Request) -> web.Response:
    """Messages DELETE (erasure): 204, then the message is gone from fetch and list."""
    message = _own_message(request)
    if isinstance(message, web.Response):
        return message
    state = request.app[SIM_STATE]
    state.store.delete(message)
    state.store.counters["messages_deleted"] += 1
    return web.Response(status=204)


def _date_sent_filter(query: Any) -> Any:
    """Twilio's `DateSent`, `DateSent<` and `DateSent>` (YYYY-MM-DD, or an ISO date-time):
    on, before or after that day, by the message's date_sent."""
    bounds = []
    for name in ("DateSent", "DateSent<", "DateSent>"):
        raw = query.get(name)
        if raw:
            try:
                day = datetime.fromisoformat(raw.replace("Z", "+00:00")).date()
            except ValueError:
                raise ValueError(f"{name} must be a date (YYYY-MM-DD)") from None
            bounds.append((name, day))

    def keep(message: SimMessage) -> bool:
        if not bounds:
            return True
        if message.date_sent is None:
            return False
        sent = message.date_sent.date()
        return all(sent == d if n == "DateSent" else sent <= d if n == "DateSent<" else sent >= d
                   for n, d in bounds)

    return keep


# ---- Lookup v2 ---------------------------------------------------------------------------

def _parse_number(raw: str, country: str | None) -> tuple[str, str | None, str | None, str | None]:
    """(E.164 or raw, ISO country, calling code, national format); Nones when unparseable."""
    try:
        parsed = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        return raw, None, None, None
    return (
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.region_code_for_country_code(parsed.country_code),
        str(parsed.country_code),
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL),
    )


async def lookup_phone_number(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    denied = authenticate(request, state)
    if denied is not None:
        return denied
    state.store.counters["lookup_requests"] += 1
    if lookup_fails(state.config, state.rng):
        state.store.counters["fault_lookup_500"] += 1
        return twilio_error(ERROR_500.status, ERROR_500.code, ERROR_500.message)
    raw = request.match_info["number"]
    fields = {f.strip() for f in request.query.get("Fields", "").split(",") if f.strip()}
    number, country, calling, national = _parse_number(raw, request.query.get("CountryCode"))
    scenario = scenario_for(number)
    if scenario.late:
        await asyncio.sleep(state.config.late_delay_s)

    valid = scenario.valid and country is not None and _is_phone(number)  # Lookup's verdict is phonenumbers-like
    errors: list[str] = [] if valid else (["INVALID_BUT_POSSIBLE"] if country else ["NOT_A_NUMBER"])
    intelligence = None
    if valid and "line_type_intelligence" in fields:
        intelligence = {
            "error_code": None,
            "mobile_country_code": "310" if scenario.line_type == "mobile" else None,
            "mobile_network_code": "999" if scenario.line_type == "mobile" else None,
            "carrier_name": CARRIERS.get(scenario.line_type or ""),
            "type": scenario.line_type,
        }
    state.store.add_lookup(phone_number=number, fields=sorted(fields), valid=valid,
                           line_type=intelligence["type"] if intelligence else None,
                           scenario=scenario.name)
    return web.json_response({
        "calling_country_code": calling,
        "country_code": country,
        "phone_number": number,
        "national_format": national,
        "valid": valid,
        "validation_errors": errors,
        "caller_name": None,
        "sim_swap": None,
        "call_forwarding": None,
        "line_status": None,
        "line_type_intelligence": intelligence,
        "identity_match": None,
        "reassigned_number": None,
        "sms_pumping_risk": None,
        "phone_number_quality_score": None,
        "pre_fill": None,
        "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{number}",
    })


def add_routes(app: web.Application) -> None:
    accounts = f"/{API_VERSION}/Accounts/{{account_sid}}"
    app.router.add_post(f"{accounts}/Messages.json", create_message)
    app.router.add_get(f"{accounts}/Messages.json", list_messages)
    app.router.add_get(f"{accounts}/Messages/{{sid}}.json", fetch_message)
    app.router.add_delete(f"{accounts}/Messages/{{sid}}.json", delete_message)
    app.router.add_get("/v2/PhoneNumbers/{number}", lookup_phone_number)
