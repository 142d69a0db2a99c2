"""The send pipeline: conversations, the sendable decision, dedupe, rate limit, sending once."""
