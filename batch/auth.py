"""OAuth2 client credentials: one cached bearer token shared by every worker.

`TokenProvider` fetches and caches the token, refreshes it before it expires and
once when the API rejects it; `BearerAuth` is the `httpx.Auth` that attaches it and
resends a request exactly once after a 401 `INVALID_TOKEN`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass

import httpx
import stamina

from batch.api import SENT_AT, unreachable_cause
from batch.config import ApiConfig
from batch.errors import ApiUnreachableError, AuthRefusedError, PaybatchError
from batch.policy import (
    Action,
    BackOff,
    Call,
    back_off,
    decide,
    outcome_of_status,
    retry_after_seconds,
)
from batch.ratelimit import RateLimiter, Window

log = logging.getLogger(__name__)

# The token endpoint allows 30 requests a minute; we need one every couple of hours.
TOKEN_ENDPOINT_WINDOW = Window(30, 60.0)
REFRESH_MARGIN = 60.0  # refresh this long before expiry (or at 90% of a short lifetime)
TOKEN_ATTEMPTS = 4
TOKEN_TIMEOUT = 120.0  # seconds of retrying before the token endpoint counts as unreachable


class TokenUnavailableError(PaybatchError):
    """The token endpoint answered nonsense or kept failing, after retries."""

    exit_code = 1


class TokenEndpointUnreachableError(TokenUnavailableError, ApiUnreachableError):
    """Every attempt at the token endpoint failed before an answer; `cause` says how."""

    exit_code = 5


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float  # on the provider's clock
    environment: str | None  # "test" | "live" from the JWT's `test` claim, when it is a JWT


def environment_of(access_token: str) -> str | None:
    """Read the `test` claim of a JWT without verifying it; None when it is not a JWT."""
    parts = access_token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("test"), bool):
        return None
    return "test" if claims["test"] else "live"


class TokenProvider:
    """Caches one bearer token for all workers and refreshes it once for all of them."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: ApiConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_token: Callable[[str], None] = lambda _token: None,
    ) -> None:
        self._client = client
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._on_token = on_token
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self._endpoint = RateLimiter((TOKEN_ENDPOINT_WINDOW,), clock=clock, sleep=sleep)
        self.refreshes = 0

    @property
    def environment(self) -> str | None:
        return self._token.environment if self._token else None

    async def token(self) -> str:
        """The current token, fetched or refreshed first when it is missing or about to expire."""
        current = self._token
        if current is not None and self._clock() < current.expires_at:
            return current.value
        async with self._lock:
            current = self._token
            if current is None or self._clock() >= current.expires_at:
                current = await self._fetch()
            return current.value

    async def rejected(self, value: str) -> str:
        """The API refused `value`: refresh once (unless another worker already did)."""
        async with self._lock:
            current = self._token
            if current is None or current.value == value:
                current = await self._fetch()
            return current.value

    async def _fetch(self) -> Token:
        body = {
            "grant_type": "client_credentials",
            "client_id": self._config.client_id,
            "client_secret": self._config.client_secret.reveal(),
        }
        if self._config.scope:
            body["scope"] = self._config.scope
        try:
            async for attempt in stamina.retry_context(
                on=back_off, attempts=TOKEN_ATTEMPTS, timeout=TOKEN_TIMEOUT, wait_max=30.0
            ):
                with attempt:
                    return await self._ask(body)
        except BackOff as exc:
            if exc.unreached is not None:
                cause = unreachable_cause(exc.unreached)
                raise TokenEndpointUnreachableError(
                    f"could not reach the token endpoint {self._config.auth_url} ({cause}) in "
                    f"{TOKEN_ATTEMPTS} attempts; check the network, HTTPS_PROXY and CL_AUTH_URL",
                    cause=cause,
                ) from None
            raise TokenUnavailableError(
                f"could not get an access token from {self._config.auth_url} "
                f"after {TOKEN_ATTEMPTS} attempts ({exc})"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ask(self, body: dict[str, str]) -> Token:
        """One request to the token endpoint, judged by the policy's TOKEN rules."""
        await self._endpoint.acquire()
        try:
            response = await self._client.post(
                self._config.auth_url, json=body, headers={"Accept": "application/json"}
            )
        except httpx.RequestError as exc:
            unreached = exc if isinstance(exc, httpx.TransportError) else None
            raise BackOff(Call.TOKEN, type(exc).__name__, unreached=unreached) from exc
        outcome = outcome_of_status(response.status_code, has_id=True)
        rule = decide(Call.TOKEN, outcome)
        if rule.action is Action.BACK_OFF:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise BackOff(Call.TOKEN, f"HTTP {response.status_code}", wait)
        if rule.action is Action.FINAL:
            raise AuthRefusedError(
                f"the token endpoint {self._config.auth_url} refused the client credentials "
                f"(HTTP {response.status_code}{_error_code(response)}); "
                "check CL_CLIENT_ID, CL_CLIENT_SECRET, CL_SCOPE and CL_AUTH_URL"
            )
        return self._accept(response)

    def _accept(self, response: httpx.Response) -> Token:
        try:
            doc = response.json()
            value = doc["access_token"]
            lifetime = float(doc.get("expires_in", 7200))
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenUnavailableError(
                f"the token endpoint answered HTTP {response.status_code} "
                "without a usable access_token"
            ) from exc
        if not isinstance(value, str) or not value:
            raise TokenUnavailableError("the token endpoint answered an empty access_token")
        self._on_token(value)
        margin = min(REFRESH_MARGIN, lifetime * 0.1)
        token = Token(value, self._clock() + lifetime - margin, environment_of(value))
        self._token = token
        self.refreshes += 1
        log.info(
            "access token obtained",
            extra={"expires_in": lifetime, "environment": token.environment or "unknown"},
        )
        return token


def _error_code(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return ""
    if isinstance(doc, dict):
        errors = doc.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return f" {errors[0].get('code', '')}".rstrip()
        if isinstance(doc.get("error"), str):
            return f" {doc['error']}"
    return ""


def is_invalid_token(response: httpx.Response) -> bool:
    """A 401 whose first JSON:API error is INVALID_TOKEN (what the SDK refreshes on)."""
    if response.status_code != 401:
        return False
    try:
        doc = response.json()
        return bool(doc["errors"][0]["code"] == "INVALID_TOKEN")
    except (ValueError, KeyError, IndexError, TypeError):
        return False


class BearerAuth(httpx.Auth):
    """Attach the shared token; after a 401 INVALID_TOKEN refresh once and resend once."""

    requires_response_body = True

    def __init__(
        self, provider: TokenProvider, *, pace: Callable[[], Awaitable[float]] | None = None
    ) -> None:
        self._provider = provider
        self._pace = pace  # the API limiter's acquire: the resend is a request like any other
        # The run's stop, once it has one: after a stop the 401 stands and nothing is resent
        # (the request was not processed; the next run sends the row).
        self.stopped: Callable[[], bool] = lambda: False

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("BearerAuth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        value = await self._provider.token()
        request.headers["Authorization"] = f"Bearer {value}"
        response = yield request
        # httpx reads the body for `requires_response_body` only in its own flows, not in
        # an overridden one; without this a streamed 401 raises ResponseNotRead.
        await response.aread()
        if is_invalid_token(response):  # policy.REFRESH_ON: refresh once, resend once
            value = await self._provider.rejected(value)
            request.headers["Authorization"] = f"Bearer {value}"
            if self._pace is not None:
                request.extensions[SENT_AT] = await self._pace()
            if self.stopped():
                return
            yield request
