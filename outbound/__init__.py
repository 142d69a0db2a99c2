"""Outbound webhooks (Standard Webhooks): a firm's endpoints, the fan-out of its event
log into per-endpoint delivery rows, delivery by the `deliveries` queue with retries in
PostgreSQL, the delivery log and replay (`leadsms webhooks`), the SSRF guard.

Layer: beside conversations/, above firms/ and events/, so the erasure (intake/) can
remove a person's delivery rows in its own transaction.
"""
