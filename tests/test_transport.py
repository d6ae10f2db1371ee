"""The API client's transport against the sandbox: failures the outcome policy must read right."""

import asyncio
import gzip
import socket
from collections.abc import Callable

import httpx
import pytest
from aiohttp import web

from batch.api import open_client
from batch.policy import Outcome, outcome_of_error
from batch.sandbox import Faults, SandboxServer

SandboxFactory = Callable[..., SandboxServer]
REQUEST = httpx.Request("POST", "http://127.0.0.1:9/api/external_payments")


def send(url: str, *, timeout: float = 5.0, **kw: object) -> httpx.Response:
    async def main() -> httpx.Response:
        async with open_client(timeout=timeout, concurrency=2) as client:
            return await client.request("GET", url, **kw)  # type: ignore[arg-type]

    return asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_connection_refused_is_never_sent() -> None:
    with pytest.raises(httpx.ConnectError) as caught:
        send(f"http://127.0.0.1:{free_port()}/")
    assert outcome_of_error(caught.value) is Outcome.NOT_SENT


def post_payment(server: SandboxServer, timeout: float) -> httpx.Response:
    async def main() -> httpx.Response:
        async with open_client(timeout=timeout, concurrency=2) as client:
            token = await client.post(
                server.auth_url,
                json={
                    "grant_type": "client_credentials",
                    "client_id": server.client_id,
                    "client_secret": server.client_secret,
                },
            )
            doc = {
                "data": {
                    "type": "external_payments",
                    "attributes": {"payment_source_token": "tok_abc"},
                    "relationships": {"order": {"data": {"type": "orders", "id": "O1"}}},
                }
            }
            return await client.post(
                server.base_url + "/api/external_payments",
                json=doc,
                headers={
                    "Accept": "application/vnd.api+json",
                    "Content-Type": "application/vnd.api+json",
                    "Authorization": f"Bearer {token.json()['access_token']}",
                },
            )

    return asyncio.run(main())


def test_created_then_dropped_is_unknown(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(open_orders=True, limits=None, faults=Faults(p_drop_after=1.0))
    with pytest.raises(httpx.TransportError) as caught:
        post_payment(server, timeout=5.0)
    assert outcome_of_error(caught.value) is Outcome.UNKNOWN
    assert len(server.payments_by_order()["O1"]) == 1  # it exists although we got no answer


def test_late_answer_is_a_read_timeout(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(
        open_orders=True, limits=None, faults=Faults(p_late=1.0, late_seconds=1.5)
    )
    with pytest.raises(httpx.ReadTimeout) as caught:
        post_payment(server, timeout=0.5)
    assert outcome_of_error(caught.value) is Outcome.UNKNOWN


def test_created_answer_and_gzip_bodies_read_back() -> None:
    async def handler(request: web.Request) -> web.Response:
        body = gzip.compress(b'{"data": {"id": "P1", "type": "external_payments"}}')
        return web.Response(
            status=201,
            body=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/vnd.api+json"},
        )

    async def main() -> httpx.Response:
        app = web.Application()
        app.router.add_get("/x", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with open_client(timeout=5.0, concurrency=2) as client:
                return await client.get(f"http://127.0.0.1:{port}/x?filter[q][id_in]=a,b")
        finally:
            await runner.cleanup()

    response = asyncio.run(main())
    assert response.status_code == 201
    assert response.json()["data"]["id"] == "P1"


def test_the_api_client_keeps_no_cookies(sandbox: SandboxServer) -> None:
    async def main() -> int:
        async with open_client(timeout=5.0, concurrency=2) as client:
            await client.post(
                sandbox.auth_url,
                json={
                    "grant_type": "client_credentials",
                    "client_id": sandbox.client_id,
                    "client_secret": sandbox.client_secret,
                },
            )
            client.cookies.extract_cookies(
                httpx.Response(200, headers={"Set-Cookie": "s=1"}, request=REQUEST)
            )
            return len(client.cookies)

    assert asyncio.run(main()) == 0
