"""The naive clients paybatch is compared with: a sequential loop and a 50-wide gather."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence

import httpx

JSON_API = "application/vnd.api+json"
GATHER_WIDTH = 50
RETRY_AFTER_429 = 1.0


def _body(order_id: str, token: str) -> bytes:
    document = {
        "data": {
            "type": "external_payments",
            "attributes": {"payment_source_token": token},
            "relationships": {"order": {"data": {"type": "orders", "id": order_id}}},
        }
    }
    return json.dumps(document).encode()


def _client(env: Mapping[str, str], width: int) -> httpx.AsyncClient:
    """An AsyncClient for the sandbox, `width` connections wide."""
    return httpx.AsyncClient(
        base_url=env["CL_BASE_URL"],
        timeout=30.0,
        limits=httpx.Limits(max_connections=width, max_keepalive_connections=width),
        trust_env=False,
    )


async def _authorize(client: httpx.AsyncClient, env: Mapping[str, str]) -> None:
    """Fetch a bearer token and set it, with the JSON:API headers, on every request."""
    grant = {
        "grant_type": "client_credentials",
        "client_id": env["CL_CLIENT_ID"],
        "client_secret": env["CL_CLIENT_SECRET"],
    }
    answer = await client.post(env["CL_AUTH_URL"], json=grant)
    answer.raise_for_status()
    client.headers.update(
        {
            "Authorization": f"Bearer {answer.json()['access_token']}",
            "Accept": JSON_API,
            "Content-Type": JSON_API,
        }
    )


async def sequential(env: Mapping[str, str], rows: Sequence[tuple[str, str]]) -> None:
    """One request at a time; a 429 (never expected at this pace) is retried after 1 s."""
    async with _client(env, 1) as client:
        await _authorize(client, env)
        for order_id, token in rows:
            while True:
                answer = await client.post("/api/external_payments", content=_body(order_id, token))
                if answer.status_code != 429:
                    break
                await asyncio.sleep(RETRY_AFTER_429)


async def gathered(env: Mapping[str, str], rows: Sequence[tuple[str, str]]) -> None:
    """Everything at once through asyncio.gather and Semaphore(50); 429s retried after 1 s."""
    gate = asyncio.Semaphore(GATHER_WIDTH)
    async with _client(env, GATHER_WIDTH) as client:
        await _authorize(client, env)

        async def one(order_id: str, token: str) -> None:
            while True:
                async with gate:
                    answer = await client.post(
                        "/api/external_payments", content=_body(order_id, token)
                    )
                if answer.status_code != 429:
                    return
                await asyncio.sleep(RETRY_AFTER_429)

        await asyncio.gather(*(one(order_id, token) for order_id, token in rows))
