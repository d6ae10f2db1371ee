"""The Commerce Layer calls paybatch makes: pure HTTP plus JSON:API, classified by the policy.

    create_external_payment(row) -> Answer           one POST; never retried here
    order_views(order_ids= | numbers=) -> {key: OrderView}
                                                      the preflight's two lookups per 25 orders
    external_payments_for(order_ids) -> [FoundPayment]
    external_payment(id) -> FoundPayment | None

Nothing here touches the journal or the report. Lookups are idempotent: they wait for the
limiter themselves and are retried by stamina on what `policy.ACTIONS` says to back off on.
The POST is sent once; the `Sender` owns its slot, its journal marks and any resend.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import httpx
import stamina

from batch.errors import PaybatchError, UsageError
from batch.jsonapi import (
    clip,
    error_of,
    found_payment,
    order_views_of,
    page_count,
    payment_id_of,
)
from batch.policy import (
    Action,
    BackOff,
    Call,
    OrderView,
    Outcome,
    Source,
    back_off,
    decide,
    outcome_of_error,
    outcome_of_status,
    retry_after_seconds,
)
from batch.ratelimit import RateLimiter
from batch.rows import InputRow
from batch.tls import ssl_context

log = logging.getLogger(__name__)

JSON_API = "application/vnd.api+json"
# The request extension holding the limiter's grant (its send time) for the request: how
# an answer finds its own send, resends after a token refresh included.
SENT_AT = "paybatch.sent_at"
CREATE_PATH = "/api/external_payments"
LOOKUP_BATCH = 25  # the API's maximum page size, and the most ids we put in one filter
LOOKUP_ATTEMPTS = 6
LOOKUP_TIMEOUT = 120.0  # seconds of retrying one lookup before giving up
ORDER_FIELDS = {
    "fields[orders]": "number,status,payment_source,payment_method",
    "fields[payment_methods]": "payment_source_type,payment_gateway",
    "fields[external_payments]": "payment_source_token",
}


@dataclass(frozen=True, slots=True)
class Answer:
    """What one POST came back with, already classified."""

    outcome: Outcome
    http_status: int | None = None
    error_code: str = ""
    error_detail: str = ""
    payment_id: str = ""
    unreached: str = ""  # a transport failure's `unreachable_cause`, for the run's streak


@dataclass(frozen=True, slots=True)
class FoundPayment:
    """An external payment the server has, with its order and a hash of its token."""

    id: str
    order_id: str
    token_sha256: str


HttpClient = httpx.AsyncClient  # what the runner is handed, without importing httpx itself


class LookupFailedError(PaybatchError):
    """A lookup could not be completed; the rows it was for stay unknown.

    `unreached` names how the last attempt failed to reach the API ("connection refused",
    "DNS", ...) when it never left this machine, else it is None.
    """

    exit_code = 1

    def __init__(self, message: str, *, unreached: str | None = None) -> None:
        super().__init__(message)
        self.unreached = unreached


def open_client(*, timeout: float, concurrency: int) -> httpx.AsyncClient:
    """The shared AsyncClient, as wide as the concurrency, on httpx's own transport.

    It honours HTTPS_PROXY, HTTP_PROXY and NO_PROXY (`trust_env`), and verifies https
    against `batch.tls.ssl_context()`: SSL_CERT_FILE/SSL_CERT_DIR, else the OS trust store.
    """
    width = concurrency + 2
    return httpx.AsyncClient(
        verify=ssl_context(),
        limits=httpx.Limits(max_connections=width, max_keepalive_connections=width),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0), pool=None),
        follow_redirects=False,
        trust_env=True,
    )


def unreachable_cause(error: BaseException) -> str:
    """How a request failed to reach the server, in the words of the summary line."""
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.ProxyError):
        return "proxy"
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for kind, name in _UNREACHABLE_CAUSES:
        if any(isinstance(e, kind) for e in chain):
            return name
    return "connection failed" if isinstance(error, httpx.ConnectError) else "connection lost"


_UNREACHABLE_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (socket.gaierror, "DNS"),
    (ssl.SSLError, "TLS"),
    (ConnectionRefusedError, "connection refused"),
)


def payment_document(row: InputRow) -> dict[str, Any]:
    """The JSON:API create document, exactly the seed's shape."""
    return {
        "data": {
            "type": "external_payments",
            "attributes": row.attributes(),
            "relationships": {"order": {"data": {"type": "orders", "id": row.order_id}}},
        }
    }


class CommerceLayer:
    """The calls we make. The client, auth, limiter and clock are injected."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        *,
        auth: httpx.Auth,
        limiter: RateLimiter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._auth = auth
        self._limiter = limiter
        self._clock = clock
        self.requests = {"post": 0, "lookup": 0, "throttled": 0}

    async def create_external_payment(self, row: InputRow, *, sent: float) -> Answer:
        """POST one external payment, now, on the limiter's ticket `sent` (its grant);
        never raises for an API or transport failure."""
        body = json.dumps(payment_document(row), ensure_ascii=False).encode("utf-8")
        headers = {"Accept": JSON_API, "Content-Type": JSON_API}
        self.requests["post"] += 1
        response = await self._exchange(
            "POST", CREATE_PATH, sent=sent, content=body, headers=headers
        )
        if isinstance(response, Exception):
            return Answer(
                outcome_of_error(response),
                error_code=_transport_code(response),
                error_detail=_transport_detail(response),
                unreached=unreachable_cause(response),
            )
        doc = _json(response)
        payment_id = payment_id_of(doc)
        code, detail, pointer = error_of(response.status_code, response.text, doc)
        outcome = outcome_of_status(
            response.status_code, has_id=bool(payment_id), code=code, pointer=pointer
        )
        if outcome is Outcome.CREATED:
            return Answer(outcome, response.status_code, payment_id=payment_id)
        return Answer(outcome, response.status_code, error_code=code, error_detail=detail)

    async def order_views(
        self, *, order_ids: Sequence[str] = (), numbers: Sequence[str] = ()
    ) -> dict[str, OrderView]:
        """What the server shows for up to 25 orders, keyed by the ID (or number) asked for.

        Two lookups, both every time: the orders (status, payment method, active source)
        and every external payment on them (orphans too). Records are matched to what was
        asked by ID or number, never by position: a server that ignores a filter answers
        200 with unrelated records, and those are dropped.
        """
        if len(order_ids) + len(numbers) > LOOKUP_BATCH:
            raise ValueError(f"at most {LOOKUP_BATCH} orders per lookup")
        by = "number" if numbers else "id"
        wanted = list(numbers or order_ids)
        orders = self._orders(by, wanted)
        if by == "id":
            docs, payments = await asyncio.gather(orders, self.external_payments_for(wanted))
        else:
            docs = await orders
            ids = [view.order_id for view in order_views_of(docs, by, wanted).values()]
            payments = await self.external_payments_for(ids) if ids else []
        views = order_views_of(docs, by, wanted)
        return {
            key: _with_payments(view, [p for p in payments if p.order_id == view.order_id])
            for key, view in views.items()
        }

    async def _orders(self, by: str, wanted: list[str]) -> list[dict[str, Any]]:
        params = {
            f"filter[q][{by}_in]": ",".join(wanted),
            "include": "payment_source,payment_method",
            **ORDER_FIELDS,
        }
        try:
            return await self._pages("/api/orders", params)
        except LookupFailedError as exc:
            if by == "number" and "HTTP 400" in str(exc):
                raise UsageError(
                    "the API refused to look orders up by number (filter[q][number_in]): "
                    f"{exc}; use order IDs with --match id"
                ) from None
            raise

    async def external_payments_for(self, order_ids: Sequence[str]) -> list[FoundPayment]:
        """Every external payment of these orders, batched 25 ids to a request."""
        found: list[FoundPayment] = []
        asked = set(order_ids)
        for start in range(0, len(order_ids), LOOKUP_BATCH):
            chunk = list(order_ids[start : start + LOOKUP_BATCH])
            params = {
                "filter[q][order_id_in]": ",".join(chunk),
                "include": "order",
                "fields[orders]": "number",
            }
            for doc in await self._pages("/api/external_payments", params):
                for item in doc.get("data") or []:
                    payment = found_payment(item)
                    if payment is None:  # no order linkage: ask order by order
                        return await self._one_by_one(order_ids)
                    if payment[1] in asked:
                        found.append(FoundPayment(*payment))
        return found

    async def _one_by_one(self, order_ids: Sequence[str]) -> list[FoundPayment]:
        found: list[FoundPayment] = []
        for order_id in order_ids:
            params = {"filter[q][order_id_eq]": order_id}
            for doc in await self._pages("/api/external_payments", params):
                for item in doc.get("data") or []:
                    payment = found_payment(item, order_id=order_id)
                    if payment is not None:
                        found.append(FoundPayment(*payment))
        return found

    async def external_payment(self, payment_id: str) -> FoundPayment | None:
        """One external payment by ID, with its order; None when the server has no such ID."""
        if not payment_id:
            return None
        path = f"/api/external_payments/{quote(payment_id, safe='')}"
        doc = await self._get_json(path, {"include": "order"}, missing_ok=True)
        if doc is None:
            return None
        payment = found_payment(doc.get("data"), order_id="")
        return FoundPayment(*payment) if payment else None

    async def _pages(self, path: str, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = []
        page, pages = 1, 1
        while page <= pages:
            params = {**filters, "page[size]": str(LOOKUP_BATCH), "page[number]": str(page)}
            doc = await self._get_json(path, params, missing_ok=False)
            assert doc is not None
            docs.append(doc)
            pages = page_count(doc, page, LOOKUP_BATCH)
            page += 1
        return docs

    async def _get_json(
        self, path: str, params: Mapping[str, str], *, missing_ok: bool
    ) -> dict[str, Any] | None:
        """One GET, resent as the policy's LOOKUP rules say; stamina owns the backoff."""
        try:
            async for attempt in stamina.retry_context(
                on=back_off, attempts=LOOKUP_ATTEMPTS, timeout=LOOKUP_TIMEOUT, wait_max=10.0
            ):
                with attempt:
                    return await self._get_once(path, params, missing_ok=missing_ok)
        except BackOff as exc:
            unreached = None if exc.unreached is None else unreachable_cause(exc.unreached)
            raise LookupFailedError(
                f"lookup failed {LOOKUP_ATTEMPTS} times; last: {exc}", unreached=unreached
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_once(
        self, path: str, params: Mapping[str, str], *, missing_ok: bool
    ) -> dict[str, Any] | None:
        while True:
            # Whether a GET on the POSTs' path shares their burst window is unconfirmed:
            # the limiter holds it there. The orders are another endpoint.
            same_path = path.startswith(CREATE_PATH)
            sent = await self._limiter.acquire(lookup=True, same_path=same_path)
            self.requests["lookup"] += 1
            response = await self._exchange(
                "GET", path, sent=sent, params=params, headers={"Accept": JSON_API}
            )
            if isinstance(response, Exception):
                outcome = outcome_of_error(response)
                if decide(Call.LOOKUP, outcome).action is Action.FINAL:
                    raise LookupFailedError(f"lookup cannot be sent: {_transport_detail(response)}")
                sent = outcome is not Outcome.NOT_SENT
                never_left = None if sent else response
                if not isinstance(never_left, httpx.TransportError):
                    never_left = None
                raise BackOff(Call.LOOKUP, _transport_detail(response), unreached=never_left)
            if response.status_code == 404 and missing_ok:
                return None
            doc = _json(response)
            code, detail, pointer = error_of(response.status_code, response.text, doc)
            outcome = outcome_of_status(
                response.status_code, has_id=True, code=code, pointer=pointer
            )
            if outcome is Outcome.CREATED and not isinstance(doc, dict):
                outcome = Outcome.UNKNOWN  # a 200 that is not JSON:API: read it again
            rule = decide(Call.LOOKUP, outcome)
            if rule.action is Action.DONE:
                assert isinstance(doc, dict)
                return doc
            if rule.action is Action.RESEND_NOW:
                continue  # the limiter already paused everyone; not a failure
            if rule.action is Action.BACK_OFF:
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                raise BackOff(Call.LOOKUP, f"HTTP {response.status_code}", wait)
            raise LookupFailedError(
                f"lookup refused: HTTP {response.status_code} {code} {detail}".rstrip()
            )

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        sent: float,
        headers: Mapping[str, str],
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response | Exception:
        """One request, granted by the limiter at `sent`, and its answer; the limiter learns
        from every answer, for the send that got it (a resend after a token refresh has its
        own grant, in the request's SENT_AT extension)."""
        try:
            response = await self._client.request(
                method,
                self._base + path,
                content=content,
                params=params,
                headers=headers,
                auth=self._auth,
                extensions={SENT_AT: sent},
            )
        except httpx.RequestError as exc:  # transport failures, and bodies that fail to decode
            return exc
        answered = response.request.extensions.get(SENT_AT, sent)
        # From the grant, not from the request: the journal write in between delays arrival
        # too, and the limiter's pad must cover all of it.
        self._limiter.record_latency(self._clock() - answered, sent=answered)
        self._limiter.observe(response.headers)
        if response.status_code == 429:
            self.requests["throttled"] += 1
            self._limiter.on_throttled(retry_after_seconds(response.headers.get("Retry-After")))
        else:
            self._limiter.on_accepted()
        return response


def _with_payments(view: OrderView, payments: list[FoundPayment]) -> OrderView:
    sources = tuple(Source("external_payments", p.id, p.token_sha256) for p in payments)
    active = view.active
    if active is not None and active.type == "external_payments" and not active.token_sha256:
        known = next((s for s in sources if s.id == active.id), None)
        active = known or active
    return replace(view, payments=sources, active=active)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _transport_code(error: Exception) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).upper()


def _transport_detail(error: Exception) -> str:
    return clip(f"{type(error).__name__}: {error}".rstrip(": "))
