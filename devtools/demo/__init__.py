"""`leadsms demo`: the whole system on one machine with demo data."""
