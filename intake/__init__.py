"""Lead intake: the CRM hook, phone validation, the validate_lead actor, CSV import."""
