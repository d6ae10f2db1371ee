"""A tiny authenticated JSON:API client for the sandbox tests, over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx

from batch.sandbox import SandboxServer

JSONAPI = "application/vnd.api+json"


def get_token(server: SandboxServer, client: httpx.Client) -> str:
    body = {
        "grant_type": "client_credentials",
        "client_id": server.client_id,
        "client_secret": server.client_secret,
    }
    response = client.post(server.auth_url, json=body)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def headers(token: str, *, body: bool = True) -> dict[str, str]:
    h = {"Authorization": f"Bearer {token}", "Accept": JSONAPI}
    if body:
        h["Content-Type"] = JSONAPI
    return h


def payment_doc(order_id: str, token: str = "tok_live_abc123", **attrs: Any) -> bytes:
    doc = {
        "data": {
            "type": "external_payments",
            "attributes": {"payment_source_token": token, **attrs},
            "relationships": {"order": {"data": {"type": "orders", "id": order_id}}},
        }
    }
    return json.dumps(doc).encode()


class Api:
    """A tiny authenticated client for one sandbox."""

    def __init__(self, server: SandboxServer, client: httpx.Client) -> None:
        self.server, self.client = server, client
        self.token = get_token(server, client)

    def create(self, order_id: str, token: str = "tok_live_abc123", **attrs: Any) -> httpx.Response:
        return self.client.post(
            "/api/external_payments",
            content=payment_doc(order_id, token, **attrs),
            headers=headers(self.token),
        )

    def post_raw(self, doc: Any) -> httpx.Response:
        return self.client.post(
            "/api/external_payments", content=json.dumps(doc).encode(), headers=headers(self.token)
        )

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.client.get(path, params=params, headers=headers(self.token, body=False))


def first_error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == JSONAPI
    errors = response.json()["errors"]
    assert errors
    for e in errors:
        assert e["status"] == str(response.status_code)
        assert {"title", "detail", "code", "status"} <= set(e)
    error: dict[str, Any] = errors[0]
    return error
