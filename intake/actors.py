"""dramatiq actors of this package: thin shells that hand ids to the service."""
