"""Everything a command needs to talk to the API: token, limiter and client, wired once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from batch.api import CommerceLayer, HttpClient
from batch.auth import BearerAuth, TokenProvider
from batch.config import ApiConfig
from batch.ratelimit import RateLimiter, Window, default_windows


@dataclass(frozen=True, slots=True)
class Connection:
    api: CommerceLayer
    limiter: RateLimiter
    provider: TokenProvider
    environment: str  # "test" or "live"; "test" when the token does not say (the stricter)
    auth: BearerAuth


async def connect(
    client: HttpClient,
    config: ApiConfig,
    *,
    windows: tuple[Window, ...],
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    on_secret: Callable[[str], None],
) -> Connection:
    """Fetch the first token (AuthRefusedError on bad credentials) and set up the limiter."""
    provider = TokenProvider(client, config, clock=clock, sleep=sleep, on_token=on_secret)
    await provider.token()
    environment = provider.environment or "test"
    limiter = RateLimiter(windows or default_windows(environment), clock=clock, sleep=sleep)
    auth = BearerAuth(provider, pace=limiter.acquire)
    api = CommerceLayer(client, config.base_url, auth=auth, limiter=limiter, clock=clock)
    return Connection(api, limiter, provider, environment, auth)
