"""Standard Webhooks signatures, made with the `standardwebhooks` library.

`webhook-signature` is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for each secret
that signs right now, space-separated (during a rotation: the new and the previous).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Sequence

from standardwebhooks.webhooks import Webhook


def body(event_type: str, event_at: datetime, cursor: int, data_json: str) -> str:
    """The request body: `{type, timestamp, cursor, data}`, the same bytes on every retry
    (`data_json` is the stored event data as PostgreSQL prints it)."""
    head = json.dumps({"type": event_type, "timestamp": event_at.isoformat().replace("+00:00", "Z"),
                       "cursor": str(cursor)}, separators=(",", ":"))
    return head[:-1] + ',"data":' + data_json + "}"


def headers(msg_id: str, at: datetime, payload: str, secrets: Sequence[str]) -> dict[str, str]:
    signatures = " ".join(Webhook(s).sign(msg_id, at, payload) for s in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signatures,
            "content-type": "application/json", "user-agent": "leadsms-webhooks/1"}
