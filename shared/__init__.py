"""Plumbing shared by every leadsms package: config, database, broker, web, CLI."""
