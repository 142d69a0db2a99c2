"""The change feed: the event log written in each change's transaction, the pull feed
(`GET /v1/events`), the live stream (`GET /v1/events/stream`) and its stream tokens.

Layer: just above shared/ (plumbing) and below every domain package, so any package can
record an event in its own transaction with `events.record(conn, firm_id, type, data)`.
"""

from events.log import EVENT_TYPES, record, record_many, wake

__all__ = ["EVENT_TYPES", "record", "record_many", "wake"]
