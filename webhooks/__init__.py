"""Twilio webhooks: signatures, the inbox, consent keywords, delivery status, replies."""
