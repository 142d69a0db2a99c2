"""Sweep tasks of this package: name -> async fn(deps). Run by `leadsms sweeper`."""

SWEEPS: dict = {}
