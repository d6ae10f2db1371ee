"""The whole policy, as tables: what an answer means, what we do about it, and what the
server already has for an order.

1. Every answer is first classified into an `Outcome`:

    answer                                        outcome
    --------------------------------------------  ----------
    2xx with an external payment's data.id        CREATED
    429                                           THROTTLED
    connect error/timeout, pool timeout           NOT_SENT    never left this machine
    423                                           REFUSED     not processed
    read/write timeout, reset or closed after     UNKNOWN     may have been processed
    sending, 5xx, 3xx, 2xx without data.id, an
    undecodable body, 408 (*), 409 (**)
    401 INVALID_TOKEN                             TOKEN_REJECTED
    401 otherwise, 403                            CREDENTIAL  our credential, not the row
    other 4xx, 409 TYPE_MISMATCH or on            PERMANENT
    /data/type, a request that cannot be built

   (*) a server's idle-timeout 408 can cross our request on a kept-alive connection.
   (**) Commerce Layer documents 409 as "not unique... safely ignore": on a POST it
   proves nothing about the payment, except a type mismatch, which is a malformed body.

2. `ACTIONS` maps (kind of call, outcome) to a `Rule`: the action, whether it counts as
   an attempt, and the journal state a create leaves. Read it below; it is the table.

3. `VERDICTS` says what to do with an order, given what the server shows for it. The
   preflight before an order's first POST, the settling of a lost answer and a rerun
   all use it; the README shows the same rows (a test keeps them equal).
"""

from __future__ import annotations

import email.utils
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from batch.journal import RowState
from batch.rows import RowStatus

log = logging.getLogger(__name__)

RETRY_AFTER_CAP = 120.0  # seconds: a Retry-After longer than this is read as this


class Outcome(enum.Enum):
    CREATED = "created"
    THROTTLED = "throttled"
    NOT_SENT = "not_sent"
    REFUSED = "refused"
    UNKNOWN = "unknown"
    TOKEN_REJECTED = "token_rejected"
    CREDENTIAL = "credential"
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

# Status codes with an outcome of their own; the ranges in `outcome_of_status` cover the rest.
STATUS_OUTCOMES: dict[int, Outcome] = {
    403: Outcome.CREDENTIAL,
    408: Outcome.UNKNOWN,
    409: Outcome.UNKNOWN,
    423: Outcome.REFUSED,
    429: Outcome.THROTTLED,
}


def outcome_of_status(status: int, *, has_id: bool, code: str = "", pointer: str = "") -> Outcome:
    """What an HTTP answer means, from its status, first error code and pointer."""
    if status == 401:
        return Outcome.TOKEN_REJECTED if code == "INVALID_TOKEN" else Outcome.CREDENTIAL
    if status == 409 and (code == "TYPE_MISMATCH" or pointer == "/data/type"):
        return Outcome.PERMANENT
    if status in STATUS_OUTCOMES:
        return STATUS_OUTCOMES[status]
    if 200 <= status < 300:
        return Outcome.CREATED if has_id else Outcome.UNKNOWN
    if 400 <= status < 500:
        return Outcome.PERMANENT
    return Outcome.UNKNOWN  # 1xx/3xx/5xx and anything stranger: it may have been processed


def outcome_of_error(error: Exception) -> Outcome:
    """What a transport failure means."""
    for kind, outcome in TRANSPORT_OUTCOMES:
        if isinstance(error, kind):
            return outcome
    return Outcome.UNKNOWN


# -- 2. the actions ----------------------------------------------------------------------


class Call(enum.Enum):
    CREATE = "create"  # POST /api/external_payments: never resent blindly
    LOOKUP = "lookup"  # GET orders / external payments: reading twice is harmless
    TOKEN = "token"  # POST /oauth/token: asking twice is harmless


class Action(enum.Enum):
    DONE = "done"
    RESEND_NOW = "resend now"  # the limiter already paused everyone
    BACK_OFF = "back off and resend"
    SETTLE = "settle by lookup"  # the payment may exist: look before any resend
    REFRESH_TOKEN = "refresh the token once and resend"
    FINAL = "final"


@dataclass(frozen=True, slots=True)
class Rule:
    action: Action
    attempt: bool  # counts toward the row's `attempts` and --max-attempts
    state: RowState | None = None  # the journal state a create leaves


_C, _L, _T = Call.CREATE, Call.LOOKUP, Call.TOKEN
# fmt: off
ACTIONS: dict[tuple[Call, Outcome], Rule] = {
    (_C, Outcome.CREATED):        Rule(Action.DONE, True, RowState.CREATED),
    (_C, Outcome.THROTTLED):      Rule(Action.RESEND_NOW, False, RowState.PENDING),
    (_C, Outcome.NOT_SENT):       Rule(Action.BACK_OFF, True, RowState.PENDING),
    (_C, Outcome.REFUSED):        Rule(Action.BACK_OFF, True, RowState.PENDING),
    (_C, Outcome.UNKNOWN):        Rule(Action.SETTLE, True, RowState.UNKNOWN),
    (_C, Outcome.TOKEN_REJECTED): Rule(Action.FINAL, True, RowState.RETRYABLE),  # (a)
    (_C, Outcome.CREDENTIAL):     Rule(Action.FINAL, True, RowState.RETRYABLE),  # (b)
    (_C, Outcome.PERMANENT):      Rule(Action.FINAL, True, RowState.FAILED),
    (_L, Outcome.CREATED):        Rule(Action.DONE, False),
    (_L, Outcome.THROTTLED):      Rule(Action.RESEND_NOW, False),
    (_L, Outcome.NOT_SENT):       Rule(Action.BACK_OFF, False),
    (_L, Outcome.REFUSED):        Rule(Action.BACK_OFF, False),
    (_L, Outcome.UNKNOWN):        Rule(Action.BACK_OFF, False),
    (_L, Outcome.TOKEN_REJECTED): Rule(Action.FINAL, False),  # (a)
    (_L, Outcome.CREDENTIAL):     Rule(Action.FINAL, False),
    (_L, Outcome.PERMANENT):      Rule(Action.FINAL, False),
    (_T, Outcome.CREATED):        Rule(Action.DONE, False),
    (_T, Outcome.THROTTLED):      Rule(Action.BACK_OFF, False),
    (_T, Outcome.NOT_SENT):       Rule(Action.BACK_OFF, False),
    (_T, Outcome.REFUSED):        Rule(Action.BACK_OFF, False),
    (_T, Outcome.UNKNOWN):        Rule(Action.BACK_OFF, False),
    (_T, Outcome.TOKEN_REJECTED): Rule(Action.FINAL, False),
    (_T, Outcome.CREDENTIAL):     Rule(Action.FINAL, False),
    (_T, Outcome.PERMANENT):      Rule(Action.FINAL, False),
}
# fmt: on
# (a) The first 401 INVALID_TOKEN of a request never reaches these rows: `BearerAuth`
#     refreshes the shared token once and resends (Action.REFRESH_TOKEN, paced by the
#     limiter). What reaches the caller is the answer to that resend.
# (b) A refusal of our credential, not of the row: not resent in this run, but left
#     retryable, so the next run sends it once the configuration is fixed.
REFRESH_ON = Rule(Action.REFRESH_TOKEN, False)


def decide(call: Call, outcome: Outcome) -> Rule:
    """The rule for one answer to one kind of call."""
    return ACTIONS[(call, outcome)]


class BackOff(Exception):
    """An idempotent call's answer that `ACTIONS` says to back off on and resend.

    Raised inside a `stamina.retry_context(on=back_off)` block; `wait` is the server's
    Retry-After when it sent one, and `unreached` the transport error when the request
    never got an answer at all.
    """

    def __init__(
        self,
        call: Call,
        reason: str,
        wait: float | None = None,
        unreached: httpx.TransportError | None = None,
    ) -> None:
        super().__init__(reason)
        self.call = call
        self.wait = wait
        self.unreached = unreached


def back_off(exc: Exception) -> bool | float:
    """stamina's hook: retry a `BackOff` (after its Retry-After, when given), nothing else."""
    if not isinstance(exc, BackOff):
        return False
    log.warning("%s failed (%s), retrying", exc.call.value, exc)
    return exc.wait if exc.wait is not None else True


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """A Retry-After header in seconds (delta or HTTP date), capped; None when absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(RETRY_AFTER_CAP, max(0.0, seconds))


# -- 3. what the server already has -------------------------------------------------------


class Finding(enum.Enum):
    """What the server shows for an order, in the order the checks are made."""

    NOTHING = "nothing: no payment source, no external payment"
    OURS = "the active source is an external payment with this row's token, the only one"
    REPLACED = "a payment with this row's token exists, but the order's active source is another"
    OTHER_SOURCE = "another source is active (card, other gateway, external payment with another token) and none has this row's token"  # noqa: E501
    EXTRA = "more than one external payment on the order"
    TOKEN_CHANGED = "the state file says created, but the row's token changed since"
    NOT_FOUND = "order not found"
    AMBIGUOUS = "the order number (`--match number`) matches more than one order"
    NOT_PENDING = "status is not `pending`"
    NO_METHOD = "payment method missing or not an external gateway"


@dataclass(frozen=True, slots=True)
class Verdict:
    status: RowStatus | None  # None: send it
    code: str
    exit_effect: int | None  # 1 when a person must look at the row
    send: bool


VERDICTS: dict[Finding, Verdict] = {
    Finding.NOTHING: Verdict(None, "", None, True),
    Finding.OURS: Verdict(RowStatus.ALREADY_CREATED, "", None, False),
    Finding.REPLACED: Verdict(RowStatus.FAILED, "SOURCE_REPLACED", 1, False),
    Finding.OTHER_SOURCE: Verdict(RowStatus.FAILED, "ORDER_HAS_PAYMENT_SOURCE", 1, False),
    Finding.EXTRA: Verdict(RowStatus.FAILED, "EXTRA_PAYMENTS", 1, False),
    Finding.TOKEN_CHANGED: Verdict(RowStatus.ALREADY_CREATED, "TOKEN_CHANGED", 1, False),
    Finding.NOT_FOUND: Verdict(RowStatus.FAILED, "RECORD_NOT_FOUND", 1, False),
    Finding.AMBIGUOUS: Verdict(RowStatus.FAILED, "AMBIGUOUS_ORDER_NUMBER", 1, False),
    Finding.NOT_PENDING: Verdict(RowStatus.FAILED, "ORDER_NOT_PENDING", 1, False),
    Finding.NO_METHOD: Verdict(RowStatus.FAILED, "NO_EXTERNAL_PAYMENT_METHOD", 1, False),
}
# Codes a created row can carry that still need a person (exit 1).
FLAG_CODES = frozenset({"SOURCE_REPLACED", "EXTRA_PAYMENTS", "TOKEN_CHANGED"})


@dataclass(frozen=True, slots=True)
class Source:
    """A payment source: its JSON:API type and id, and for an external payment its token."""

    type: str
    id: str
    token_sha256: str = ""


@dataclass(frozen=True, slots=True)
class OrderView:
    """What the server shows for one order: from the orders and external-payments lookups."""

    order_id: str
    found: bool
    status: str = ""
    number: str = ""
    external_gateway: bool = False  # the payment method's gateway is an external gateway
    ambiguous: bool = False  # looked up by number, and several orders carry it
    active: Source | None = None
    payments: Sequence[Source] = ()  # every external payment on the order, orphans too


def finding_for(view: OrderView, token_sha256: str) -> tuple[Finding, str]:
    """Which row of VERDICTS applies, and a plain-English detail naming what was seen."""
    if view.ambiguous:
        return Finding.AMBIGUOUS, (
            f"order number {view.number} matches more than one order; use the order ID"
        )
    if not view.found:
        if not view.order_id:
            return Finding.NOT_FOUND, f"no order has the number {view.number} in this organization"
        return Finding.NOT_FOUND, f"order {view.order_id} does not exist in this organization"
    mine = [p for p in view.payments if p.token_sha256 == token_sha256]
    active = view.active
    if len(view.payments) > 1:
        ids = ", ".join(p.id for p in view.payments)
        return (
            Finding.EXTRA,
            f"order {view.order_id} has {len(view.payments)} external payments: {ids}",
        )
    if mine:
        if active is not None and active.type == "external_payments" and active.id == mine[0].id:
            return Finding.OURS, ""
        shown = f"{active.type} {active.id}" if active else "none"
        return Finding.REPLACED, (
            f"external payment {mine[0].id} carries this row's token, but the order's active "
            f"payment source is {shown}"
        )
    if active is not None:
        return Finding.OTHER_SOURCE, (
            f"order {view.order_id} already has payment source {active.type} {active.id}; "
            "not replaced"
        )
    if view.payments:
        orphan = view.payments[0]
        return Finding.OTHER_SOURCE, (
            f"order {view.order_id} already has external payment {orphan.id} with another "
            "token; not replaced"
        )
    if view.status != "pending":
        return (
            Finding.NOT_PENDING,
            f"order {view.order_id} is {view.status or 'of unknown status'}, not pending",
        )
    if not view.external_gateway:
        return Finding.NO_METHOD, (
            f"order {view.order_id} has no payment method with an external payment gateway"
        )
    return Finding.NOTHING, ""


def payment_of(view: OrderView, token_sha256: str) -> Source | None:
    """The external payment on the order that carries this token, if any."""
    return next((p for p in view.payments if p.token_sha256 == token_sha256), None)
