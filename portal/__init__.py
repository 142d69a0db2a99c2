"""The portal-facing read API: lead picker, conversation list, thread open."""
