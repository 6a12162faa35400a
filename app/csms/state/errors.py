"""Errors of the state layer that callers answer in their own terms."""


class Unavailable(Exception):
    """Shared state (Redis in cluster mode) cannot be reached right now: the API answers
    503, the handshake 503 with Retry-After."""
