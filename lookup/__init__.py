"""Twilio Lookup: the lookup_line_type actor, the global line-type cache, lazy lookup."""
