"""Consent per (firm, phone): the append-only ledger, inbound keywords, soft opt-out rules."""
