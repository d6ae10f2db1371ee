"""The retry and outcome policy: every answer the API can give, mapped to what we do.

    answer                                        outcome    what the runner does
    --------------------------------------------  ---------  -------------------------------
    2xx with an external payment's data.id        CREATED    record the payment ID
    429                                           THROTTLED  limiter pauses everyone; resend
                                                             the same payload; no attempt
    connect error/timeout, pool timeout           NOT_SENT   never left: resend after backoff
    423                                           REFUSED    not processed: resend after
                                                             backoff, bounded
    read/write timeout, connection reset or       UNKNOWN    the payment may exist: never
    closed after sending, 5xx, 3xx, 2xx with no              resend blindly; settle by
    data.id, an answer whose body cannot be                  lookup first
    decoded (bad gzip), 408 (*)
    401 INVALID_TOKEN after the one refresh,      PERMANENT  record code and detail; no retry
    other 4xx (400, 403, 404, 409, 415, 422 ...),
    a request that cannot be sent as built
    (unsupported scheme, a header with a line break)

(*) A server sends 408 on its own when a kept-alive connection idles too long. Such a 408
can cross our request on the wire and be read as its answer while the server goes on to
process the request, so a 408 proves nothing about the payment.

For a lookup (GET) an UNKNOWN answer is simply retried: reading twice is harmless.
"""

from __future__ import annotations

import enum

import httpx


class Outcome(enum.Enum):
    CREATED = "created"
    THROTTLED = "throttled"
    NOT_SENT = "not_sent"
    REFUSED = "refused"
    UNKNOWN = "unknown"
    PERMANENT = "permanent"


# Transport failures: was the request certainly never sent, or may it have been processed?
# Order matters: the first matching class wins (ConnectTimeout is a TimeoutException too).
TRANSPORT_OUTCOMES: tuple[tuple[type[Exception], Outcome], ...] = (
    (httpx.ConnectError, Outcome.NOT_SENT),
    (httpx.ConnectTimeout, Outcome.NOT_SENT),
    (httpx.PoolTimeout, Outcome.NOT_SENT),
    (httpx.UnsupportedProtocol, Outcome.PERMANENT),
    (httpx.LocalProtocolError, Outcome.PERMANENT),
    (httpx.ReadTimeout, Outcome.UNKNOWN),
    (httpx.WriteTimeout, Outcome.UNKNOWN),
    (httpx.RemoteProtocolError, Outcome.UNKNOWN),
    (httpx.ReadError, Outcome.UNKNOWN),
    (httpx.WriteError, Outcome.UNKNOWN),
    (httpx.TransportError, Outcome.UNKNOWN),
    (httpx.DecodingError, Outcome.UNKNOWN),
)

# Status codes with an outcome of their own; the ranges below cover the rest.
STATUS_OUTCOMES: dict[int, Outcome] = {
    408: Outcome.UNKNOWN,  # (*) above
    423: Outcome.REFUSED,
    429: Outcome.THROTTLED,
}


def outcome_of_status(status: int, *, has_id: bool) -> Outcome:
    """What a status code means for a POST."""
    if status in STATUS_OUTCOMES:
        return STATUS_OUTCOMES[status]
    if 200 <= status < 300:
        return Outcome.CREATED if has_id else Outcome.UNKNOWN
    if 400 <= status < 500:
        return Outcome.PERMANENT
    return Outcome.UNKNOWN  # 1xx/3xx/5xx and anything stranger: it may have been processed


def outcome_of_error(error: Exception) -> Outcome:
    """What a transport failure means for a POST."""
    for kind, outcome in TRANSPORT_OUTCOMES:
        if isinstance(error, kind):
            return outcome
    return Outcome.UNKNOWN
