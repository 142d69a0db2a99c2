"""Firms: creating them, their API keys and the request authentication built on them."""
