"""Operations: Prometheus exposition (/metrics), queue tools, the read-only /ops page."""
