"""The Commerce Layer calls paybatch makes, paced by the limiter and classified by the policy.

`fetch` side only: nothing here touches the journal or the report.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from batch.backoff import Backoff
from batch.errors import PaybatchError
from batch.policy import Outcome, outcome_of_error, outcome_of_status
from batch.ratelimit import RateLimiter
from batch.rows import InputRow, token_hash
from batch.tls import ssl_context

log = logging.getLogger(__name__)

JSON_API = "application/vnd.api+json"
LOOKUP_BATCH = 25  # the API's maximum page size, and the most ids we put in one filter
LOOKUP_ATTEMPTS = 6
DETAIL_LIMIT = 500
URL_CACHE_SIZE = 8


@dataclass(frozen=True, slots=True)
class Answer:
    """What one POST came back with, already classified."""

    outcome: Outcome
    http_status: int | None = None
    error_code: str = ""
    error_detail: str = ""
    payment_id: str = ""
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class FoundPayment:
    """An external payment the server already has for an order."""

    id: str
    order_id: str
    token_sha256: str


HttpClient = httpx.AsyncClient  # what the runner is handed, without importing httpx itself


class LookupFailedError(PaybatchError):
    """A lookup could not be completed; the rows it was for stay unknown."""

    exit_code = 1


class _UnattributedError(Exception):
    """A batched lookup returned a payment without its order linkage."""


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
    """The two calls we make: create an external payment, and find the ones an order has."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        *,
        auth: httpx.Auth,
        limiter: RateLimiter,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._backoff = backoff or Backoff(max_attempts=LOOKUP_ATTEMPTS)
        self._rng = rng or random.Random()
        self._base = base_url.rstrip("/")
        self._urls: dict[str, httpx.URL] = {}  # parsed once: URL parsing was 5% of a POST
        self._auth = auth
        self._limiter = limiter
        self._clock = clock
        self.requests = {"post": 0, "lookup": 0, "throttled": 0}

    async def create_external_payment(
        self, row: InputRow, *, before_send: Callable[[], Awaitable[None]] | None = None
    ) -> Answer:
        """POST one external payment; never raises for an API or transport failure.

        `before_send` runs once the limiter grants the slot and before the request
        leaves: the runner commits its durable "sending" mark there.
        """
        body = json.dumps(payment_document(row), ensure_ascii=False).encode("utf-8")
        headers = {"Accept": JSON_API, "Content-Type": JSON_API}
        response = await self._send(
            "POST", "/api/external_payments", content=body, headers=headers, before_send=before_send
        )
        self.requests["post"] += 1
        if isinstance(response, Exception):
            return Answer(
                outcome_of_error(response),
                error_code=_transport_code(response),
                error_detail=_transport_detail(response),
            )
        doc = _json(response)
        payment_id = _payment_id(doc)
        outcome = outcome_of_status(response.status_code, has_id=bool(payment_id))
        if outcome is Outcome.CREATED:
            return Answer(outcome, response.status_code, payment_id=payment_id)
        code, detail = _error(response, doc)
        return Answer(
            outcome,
            response.status_code,
            error_code=code,
            error_detail=detail,
            retry_after=_retry_after(response.headers),
        )

    async def external_payments_for(self, order_ids: Sequence[str]) -> list[FoundPayment]:
        """Every external payment of these orders, batched 25 ids to a request."""
        found: list[FoundPayment] = []
        batchable = [o for o in order_ids if "," not in o]
        singles = [o for o in order_ids if "," in o]
        for start in range(0, len(batchable), LOOKUP_BATCH):
            chunk = batchable[start : start + LOOKUP_BATCH]
            try:
                found += await self._lookup({"filter[q][order_id_in]": ",".join(chunk)})
            except _UnattributedError:
                # A payment came back without its order: ask order by order, so that every
                # payment found is known to belong to the order it was asked for.
                singles += chunk
        for order_id in singles:
            found += await self._lookup({"filter[q][order_id_eq]": order_id}, order_id=order_id)
        return found

    async def external_payment(self, payment_id: str) -> FoundPayment | None:
        """One external payment by ID, with its order; None when the server has no such ID."""
        if not payment_id:
            return None
        path = f"/api/external_payments/{quote(payment_id, safe='')}"
        doc = await self._get_json(path, {"include": "order"}, missing_ok=True)
        if doc is None:
            return None
        return _found_payment(doc.get("data"), order_id="")

    async def _lookup(
        self, filters: Mapping[str, str], *, order_id: str | None = None
    ) -> list[FoundPayment]:
        found: list[FoundPayment] = []
        page, pages = 1, 1
        while page <= pages:
            params = {
                **filters,
                "include": "order",
                "page[size]": str(LOOKUP_BATCH),
                "page[number]": str(page),
            }
            doc = await self._get_json("/api/external_payments", params, missing_ok=False)
            assert doc is not None
            for item in doc.get("data") or []:
                payment = _found_payment(item, order_id=order_id)
                if payment is None:
                    raise _UnattributedError
                found.append(payment)
            pages = _page_count(doc, page)
            page += 1
        return found

    async def _get_json(
        self, path: str, params: Mapping[str, str], *, missing_ok: bool
    ) -> dict[str, Any] | None:
        failures = 0
        while True:
            response = await self._send("GET", path, params=params, headers={"Accept": JSON_API})
            self.requests["lookup"] += 1
            if isinstance(response, Exception):
                reason = _transport_detail(response)
            elif response.status_code == 200 and isinstance(doc := _json(response), dict):
                return doc
            elif response.status_code == 429:
                continue  # the limiter already paused; not a failure
            elif response.status_code == 404 and missing_ok:
                return None
            elif 400 <= response.status_code < 500 and response.status_code not in (408, 423):
                code, detail = _error(response, _json(response))
                raise LookupFailedError(
                    f"lookup refused: HTTP {response.status_code} {code} {detail}"
                )
            else:
                reason = f"HTTP {response.status_code}"
            failures += 1
            if failures >= LOOKUP_ATTEMPTS:
                raise LookupFailedError(f"lookup failed {failures} times; last: {reason}")
            log.warning("lookup failed (%s), retrying", reason)
            await self._sleep(self._backoff.delay(failures, self._rng))

    async def _send(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> httpx.Response | Exception:
        await self._limiter.acquire()
        # Latency runs from the slot to the answer, so the limiter's pad covers our own delay too.
        started = self._clock()
        if before_send is not None:
            await before_send()
        try:
            response = await self._client.request(
                method,
                self._url(path),
                content=content,
                params=params,
                headers=headers,
                auth=self._auth,
            )
        except httpx.RequestError as exc:  # transport failures, and bodies that fail to decode
            return exc
        self._limiter.record_latency(self._clock() - started)
        self._limiter.observe(response.headers)
        if response.status_code == 429:
            self.requests["throttled"] += 1
            self._limiter.on_throttled(_retry_after(response.headers))
        else:
            self._limiter.on_accepted()
        return response

    def _url(self, path: str) -> httpx.URL:
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(self._base + path)
            if len(self._urls) < URL_CACHE_SIZE:  # the fixed paths, not one per payment ID
                self._urls[path] = url
        return url


def _page_count(doc: dict[str, Any], page: int) -> int:
    """Pages to read: meta.page_count, else record_count / page size, else follow links.next."""
    meta: dict[str, Any] = doc["meta"] if isinstance(doc.get("meta"), dict) else {}
    try:
        if meta.get("page_count") is not None:
            return int(meta["page_count"])
        if meta.get("record_count") is not None:
            return max(1, -(-int(meta["record_count"]) // LOOKUP_BATCH))
    except (TypeError, ValueError):
        pass
    links: dict[str, Any] = doc["links"] if isinstance(doc.get("links"), dict) else {}
    return page + 1 if links.get("next") else page


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _payment_id(doc: Any) -> str:
    if isinstance(doc, dict) and isinstance(data := doc.get("data"), dict):
        value = data.get("id")
        if isinstance(value, str) and data.get("type") == "external_payments":
            return value
    return ""


def _found_payment(item: Any, *, order_id: str | None = None) -> FoundPayment | None:
    """A payment and its order: from the linkage, or from the one order that was asked for."""
    try:
        payment_id = str(item["id"])
        token = str(item.get("attributes", {}).get("payment_source_token") or "")
    except (KeyError, TypeError, AttributeError):
        raise LookupFailedError("lookup returned a payment without an id") from None
    try:
        owner = str(item["relationships"]["order"]["data"]["id"])
    except (KeyError, TypeError):
        if order_id is None:
            return None
        owner = order_id
    return FoundPayment(payment_id, owner, token_hash(token))


def _error(response: httpx.Response, doc: Any) -> tuple[str, str]:
    """The first error's code and every error's detail; non-JSON bodies are quoted."""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
        code = str(errors[0].get("code") or f"HTTP_{response.status_code}")
        details = []
        for error in errors:
            text = str(error.get("detail") or error.get("title") or "")
            pointer = (error.get("source") or {}).get("pointer")
            details.append(f"{text} ({pointer})" if pointer else text)
        return code, _clip("; ".join(d for d in details if d))
    text = re.sub(r"<[^>]*>", " ", response.text)
    text = " ".join(text.split())
    return f"HTTP_{response.status_code}", _clip(f"unexpected answer: {text or '(empty body)'}")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _transport_code(error: Exception) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).upper()


def _transport_detail(error: Exception) -> str:
    return _clip(f"{type(error).__name__}: {error}".rstrip(": "))


def _clip(text: str) -> str:
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"
