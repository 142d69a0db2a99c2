"""Forged and unsigned Twilio webhooks: every way a caller without the auth token could try.

Shared by tests/security (against the in-process app) and the `make faults` run (against a
real `leadsms web` process), which counts how many were accepted (must be 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twilio.request_validator import RequestValidator

from devtools.twilio_sim.signing import inbound_params, new_sid, status_params

SIGNATURE = "X-Twilio-Signature"


@dataclass(frozen=True)
class Forgery:
    name: str
    path: str
    params: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


def sign(token: str, url: str, params: dict[str, str]) -> str:
    return RequestValidator(token).compute_signature(url, params)


def forgeries(*, public_base_url: str, token: str, account_sid: str, firm_number: str, lead_phone: str,
              message_id: int) -> list[Forgery]:
    """Requests that must all be refused 403 and change nothing. `message_id` is a real
    outbound message (a forged `delivered`/`failed` for it must not land)."""
    base = public_base_url.rstrip("/")
    status_path = f"/twilio/status?m={message_id}"
    stop = inbound_params(account_sid=account_sid, from_=lead_phone, to=firm_number, body="STOP", sid=new_sid())
    failed = status_params(account_sid=account_sid, sid=new_sid(), to=lead_phone, from_=firm_number,
                           status="undelivered", error_code=30007)
    good_stop = sign(token, base + "/twilio/inbound", stop)
    good_failed = sign(token, base + status_path, failed)
    hello = {**stop, "Body": "Hello"}
    out = [
        Forgery("unsigned inbound STOP", "/twilio/inbound", stop),
        Forgery("unsigned status", status_path, failed),
        Forgery("empty signature", "/twilio/inbound", stop, {SIGNATURE: ""}),
        Forgery("garbage signature", "/twilio/inbound", stop, {SIGNATURE: "bm90IGEgc2lnbmF0dXJl"}),
        Forgery("signature of a hello applied to a STOP", "/twilio/inbound", stop,
                {SIGNATURE: sign(token, base + "/twilio/inbound", hello)}),
        Forgery("signed with another token", "/twilio/inbound", stop,
                {SIGNATURE: sign(token + "x", base + "/twilio/inbound", stop)}),
        Forgery("signed with the account sid as token", "/twilio/inbound", stop,
                {SIGNATURE: sign(account_sid, base + "/twilio/inbound", stop)}),
        Forgery("signed for the status path, sent to inbound", "/twilio/inbound", stop,
                {SIGNATURE: sign(token, base + status_path, stop)}),
        Forgery("signed for another message id", f"/twilio/status?m={message_id + 1}", failed,
                {SIGNATURE: good_failed}),
        Forgery("signed without the query", status_path, failed,
                {SIGNATURE: sign(token, base + "/twilio/status", failed)}),
        Forgery("signed for an attacker's host, Host header spoofed", "/twilio/inbound", stop,
                {SIGNATURE: sign(token, "http://evil.example/twilio/inbound", stop), "Host": "evil.example"}),
        Forgery("signed for https when the public URL is http", "/twilio/inbound", stop,
                {SIGNATURE: sign(token, base.replace("http://", "https://", 1) + "/twilio/inbound", stop)}),
        Forgery("a parameter added after signing", "/twilio/inbound", {**stop, "Extra": "1"},
                {SIGNATURE: good_stop}),
        Forgery("a parameter removed after signing", "/twilio/inbound",
                {k: v for k, v in stop.items() if k != "AccountSid"}, {SIGNATURE: good_stop}),
        Forgery("the status changed after signing", status_path, {**failed, "MessageStatus": "delivered"},
                {SIGNATURE: good_failed}),
        Forgery("the sender changed after signing", "/twilio/inbound", {**stop, "From": "+12125550999"},
                {SIGNATURE: good_stop}),
        Forgery("a lower-cased signature", "/twilio/inbound", stop, {SIGNATURE: good_stop.lower()}),
        Forgery("a truncated signature", "/twilio/inbound", stop, {SIGNATURE: good_stop[:-4]}),
    ]
    return out


def genuine(*, public_base_url: str, token: str, account_sid: str, firm_number: str, lead_phone: str,
            body: str = "Hello there") -> Forgery:
    """A correctly signed inbound text: the control that shows the refusals mean something."""
    params = inbound_params(account_sid=account_sid, from_=lead_phone, to=firm_number, body=body, sid=new_sid())
    return Forgery("genuine", "/twilio/inbound", params,
                   {SIGNATURE: sign(token, public_base_url.rstrip("/") + "/twilio/inbound", params)})
