"""The sandbox over real HTTP on 127.0.0.1: auth, media types, the create rules, reads, limits."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sandbox_client import JSONAPI, Api, first_error, get_token, headers, payment_doc

from batch.sandbox import Faults, Limit, SandboxServer

SandboxFactory = Callable[..., SandboxServer]
ID_RE = re.compile(r"^[A-Za-z0-9]{10}$")
# Seeded orders from batch/sandbox/seed_orders.csv.
PENDING = "tH41tk7mXH"
PENDING_2 = "sCivTKJ4hM"
PLACED = "JDTAoEIS5e"


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url, timeout=10) as c:
        yield c


@pytest.fixture
def api(sandbox: SandboxServer, client: httpx.Client) -> Api:
    return Api(sandbox, client)


# -- /oauth/token --------------------------------------------------------------------------


def test_token_is_jwt_shaped_and_says_test_mode(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    body = {
        "grant_type": "client_credentials",
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
        "scope": "market:code:europe",
    }
    response = client.post("/oauth/token", json=body)
    assert response.status_code == 200
    doc = response.json()
    assert set(doc) == {"access_token", "token_type", "expires_in", "scope", "created_at"}
    assert doc["token_type"] == "bearer"
    assert doc["expires_in"] == 7200
    assert doc["scope"] == "market:code:europe"
    _header, payload, signature = doc["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["test"] is True
    assert claims["organization"]["slug"] == "sandbox"
    assert claims["exp"] - claims["iat"] == 7200
    assert signature


def test_token_form_encoded_and_live_mode(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(mode="live", open_orders=True)
    with httpx.Client(base_url=server.base_url) as c:
        form = {
            "grant_type": "client_credentials",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
        }
        response = c.post("/oauth/token", data=form)
        assert response.status_code == 200
        payload = response.json()["access_token"].split(".")[1]
        assert json.loads(base64.urlsafe_b64decode(payload + "==="))["test"] is False
        api = Api(server, c)
        created = api.create(PENDING)
        assert created.json()["data"]["meta"] == {"mode": "live"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"grant_type": "client_credentials", "client_id": "sandbox-client"}, 401, "UNAUTHORIZED"),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "x",
                "client_secret": "sandbox-secret",
            },
            401,
            "UNAUTHORIZED",
        ),
        (
            {
                "grant_type": "password",
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
            },
            400,
            "UNSUPPORTED_GRANT_TYPE",
        ),
    ],
)
def test_token_refused(client: httpx.Client, body: dict[str, str], status: int, code: str) -> None:
    response = client.post("/oauth/token", json=body)
    assert response.status_code == status
    assert first_error(response)["code"] == code
    assert "sandbox-secret" not in response.text


def test_token_endpoint_has_its_own_limit(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(limits=None, token_limit=Limit(3, 60.0))
    with httpx.Client(base_url=server.base_url) as c:
        for _ in range(3):
            get_token(server, c)
        response = c.post("/oauth/token", json={"grant_type": "client_credentials"})
        assert response.status_code == 429
        assert first_error(response)["code"] == "TOO_MANY_REQUESTS"
        assert 59 <= int(response.headers["Retry-After"]) <= 60


# -- auth and media types on /api/* -------------------------------------------------------


def invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.json() == {
        "errors": [
            {
                "title": "Invalid token",
                "detail": "The access token you provided is invalid.",
                "code": "INVALID_TOKEN",
                "status": "401",
            }
        ]
    }


def test_api_needs_a_bearer_token(sandbox: SandboxServer, client: httpx.Client) -> None:
    doc = payment_doc(PENDING)
    invalid_token(client.post("/api/external_payments", content=doc, headers={"Accept": JSONAPI}))
    forged = get_token(sandbox, client)[:-4] + "AAAA"
    invalid_token(client.post("/api/external_payments", content=doc, headers=headers(forged)))
    invalid_token(client.get("/api/orders/x", headers=headers("not.a.jwt", body=False)))
    assert sandbox.payments_by_order() == {}


def test_expired_token_is_refused(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(open_orders=True, limits=None, token_ttl=0.3)
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        assert api.create("ORDER00001").status_code == 201
        time.sleep(0.4)
        invalid_token(api.create("ORDER00002"))
        api.token = get_token(server, c)  # a fresh token works again
        assert api.create("ORDER00002").status_code == 201


def test_media_types(api: Api) -> None:
    wrong_accept = {**headers(api.token), "Accept": "application/json"}
    response = api.client.post(
        "/api/external_payments", content=payment_doc(PENDING), headers=wrong_accept
    )
    assert response.status_code == 406
    assert first_error(response)["code"] == "NOT_ACCEPTABLE"
    any_type = {**headers(api.token, body=False), "Accept": "*/*"}
    assert api.client.get("/api/external_payments", headers=any_type).status_code == 406
    wrong_type = {**headers(api.token), "Content-Type": "application/json"}
    response = api.client.post(
        "/api/external_payments", content=payment_doc(PENDING), headers=wrong_type
    )
    assert response.status_code == 415
    assert first_error(response)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert api.server.payments_by_order() == {}


def test_wrong_method_and_unknown_route(api: Api) -> None:
    response = api.client.delete("/api/external_payments", headers=headers(api.token, body=False))
    assert response.status_code == 405
    assert first_error(response)["code"] == "METHOD_NOT_ALLOWED"
    response = api.client.get("/api/oauth/token", headers=headers(api.token, body=False))
    assert response.status_code == 404
    assert api.client.get("/oauth/token").status_code == 405


# -- POST /api/external_payments ------------------------------------------------------------


def test_create_answers_like_the_reference_page(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(limits=None)
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        response = api.create(
            PENDING,
            "xxxx.yyyy.zzzz",
            options={"foo": "bar"},
            reference="INV-1",
            reference_origin="NetSuite",
            metadata={"batch": 7},
        )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == JSONAPI
    data = response.json()["data"]
    assert ID_RE.match(data["id"])
    assert data["type"] == "external_payments"
    assert data["links"] == {"self": f"{server.base_url}/api/external_payments/{data['id']}"}
    attrs = data["attributes"]
    assert set(attrs) == {
        "payment_source_token",
        "options",
        "payment_instrument",
        "created_at",
        "updated_at",
        "reference",
        "reference_origin",
        "metadata",
    }
    assert attrs["payment_source_token"] == "xxxx.yyyy.zzzz"
    assert attrs["options"] == {"foo": "bar"}
    assert attrs["metadata"] == {"batch": 7}
    assert (attrs["reference"], attrs["reference_origin"]) == ("INV-1", "NetSuite")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", attrs["created_at"])
    rels = data["relationships"]
    assert set(rels) == {"order", "payment_gateway", "wallet", "versions"}
    for name, rel in rels.items():
        assert set(rel) == {"links"}  # no linkage data without include
        assert rel["links"]["related"].endswith(f"/{data['id']}/{name}")
    assert data["meta"] == {"mode": "test"}
    [stored] = server.payments_by_order()[PENDING]
    assert stored["id"] == data["id"]
    assert stored["token"] == "xxxx.yyyy.zzzz"
    assert stored["attributes"]["reference"] == "INV-1"
    assert isinstance(stored["created"], float)


def test_created_payment_becomes_the_order_payment_source(api: Api) -> None:
    payment_id = api.create(PENDING).json()["data"]["id"]
    response = api.get(f"/api/orders/{PENDING}", include="payment_source")
    assert response.status_code == 200
    doc = response.json()
    assert doc["data"]["attributes"]["status"] == "pending"
    linkage = doc["data"]["relationships"]["payment_source"]["data"]
    assert linkage == {"type": "external_payments", "id": payment_id}
    assert [r["id"] for r in doc["included"]] == [payment_id]
    plain = api.get(f"/api/orders/{PENDING_2}").json()["data"]
    assert "data" not in plain["relationships"]["payment_source"]


@pytest.mark.parametrize(
    ("doc", "status", "code", "pointer"),
    [
        ({"data": []}, 400, "INVALID_DATA_FORMAT", "/data"),
        ({"nodata": {}}, 400, "INVALID_DATA_FORMAT", "/data"),
        ({"data": {"type": "orders", "attributes": {}}}, 409, "TYPE_MISMATCH", "/data/type"),
        (
            {"data": {"type": "external_payments", "id": "abc", "attributes": {}}},
            400,
            "PARAM_NOT_ALLOWED",
            "/data/id",
        ),
        (
            {"data": {"type": "external_payments", "attributes": {"amount_cents": 100}}},
            400,
            "PARAM_NOT_ALLOWED",
            "/data/attributes/amount_cents",
        ),
        (
            {"data": {"type": "external_payments", "attributes": {"payment_source_token": 42}}},
            400,
            "INVALID_DATA_FORMAT",
            "/data/attributes/payment_source_token",
        ),
        (
            {
                "data": {
                    "type": "external_payments",
                    "attributes": {"payment_source_token": "t", "metadata": "x"},
                }
            },
            400,
            "INVALID_DATA_FORMAT",
            "/data/attributes/metadata",
        ),
        (
            {
                "data": {
                    "type": "external_payments",
                    "attributes": {"payment_source_token": "t"},
                    "relationships": {"order": {"data": {"type": "skus", "id": PENDING}}},
                }
            },
            409,
            "TYPE_MISMATCH",
            "/data/relationships/order/data/type",
        ),
        (
            {
                "data": {
                    "type": "external_payments",
                    "attributes": {"payment_source_token": "t"},
                    "relationships": {"wallet": {"data": {"type": "wallets", "id": "w"}}},
                }
            },
            400,
            "PARAM_NOT_ALLOWED",
            "/data/relationships/wallet",
        ),
        (
            {
                "data": {
                    "type": "external_payments",
                    "attributes": {"payment_source_token": "t"},
                }
            },
            422,
            "VALIDATION_ERROR",
            "/data/relationships/order",
        ),
    ],
)
def test_create_refuses_malformed_documents(
    api: Api, doc: Any, status: int, code: str, pointer: str
) -> None:
    response = api.post_raw(doc)
    assert response.status_code == status, response.text
    error = first_error(response)
    assert error["code"] == code
    assert error["source"]["pointer"] == pointer
    assert api.server.payments_by_order() == {}


def test_create_refuses_a_body_that_is_not_json(api: Api) -> None:
    response = api.client.post(
        "/api/external_payments", content=b"{not json", headers=headers(api.token)
    )
    assert response.status_code == 400
    assert first_error(response)["code"] == "INVALID_DATA_FORMAT"


def test_create_business_rules(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(limits=None)  # seeded orders only
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        unknown = api.create("Zz9Zz9Zz9Z")
        assert unknown.status_code == 404
        assert first_error(unknown)["code"] == "RECORD_NOT_FOUND"
        placed = api.create(PLACED)
        assert placed.status_code == 422
        assert first_error(placed)["source"] == {"pointer": "/data/relationships/order"}
        for token in ("", "   ", "4111 1111 1111 1111", "4111-1111-1111-1111"):
            refused = api.create(PENDING, token)
            assert refused.status_code == 422, token
            error = first_error(refused)
            assert error["code"] == "VALIDATION_ERROR"
            assert error["source"] == {"pointer": "/data/attributes/payment_source_token"}
            assert "4111" not in refused.text  # the card number is not echoed back
        # Both problems at once are reported together.
        both = api.create(PLACED, "")
        assert both.status_code == 422
        assert len(both.json()["errors"]) == 2
    assert server.payments_by_order() == {}


def test_second_payment_for_an_order(sandbox_factory: SandboxFactory) -> None:
    allow = sandbox_factory(open_orders=True, limits=None)
    reject = sandbox_factory(open_orders=True, limits=None, second_source="refuse")
    with httpx.Client(base_url=allow.base_url) as a, httpx.Client(base_url=reject.base_url) as r:
        allowing, rejecting = Api(allow, a), Api(reject, r)
        assert [allowing.create("ORDER00001").status_code for _ in range(2)] == [201, 201]
        assert len(allow.payments_by_order()["ORDER00001"]) == 2
        assert rejecting.create("ORDER00001").status_code == 201
        again = rejecting.create("ORDER00001")
        assert again.status_code == 422
        assert first_error(again)["meta"] == {"error": "taken"}
        assert len(reject.payments_by_order()["ORDER00001"]) == 1


# -- reads ---------------------------------------------------------------------------------


def test_list_filters_include_and_pages(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(orders={}, open_orders=True, limits=None)  # no seeded payments
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        api = Api(server, c)
        ids = {}
        for n in range(12):
            order = f"ORDER{n:05d}"
            ids[order] = api.create(order, f"tok_{n}", reference=f"REF-{n % 3}").json()["data"][
                "id"
            ]
        wanted = ["ORDER00001", "ORDER00004", "ORDER00011", "NOPAYMENTS"]
        response = api.get("/api/external_payments", **{"filter[q][order_id_in]": ",".join(wanted)})
        assert response.status_code == 200
        doc = response.json()
        assert {d["id"] for d in doc["data"]} == {ids[o] for o in wanted[:3]}
        assert doc["meta"] == {"record_count": 3, "page_count": 1}
        assert all("data" not in d["relationships"]["order"] for d in doc["data"])
        assert "included" not in doc

        included = api.get(
            "/api/external_payments", include="order", **{"filter[q][order_id_eq]": "ORDER00004"}
        ).json()
        [payment] = included["data"]
        assert payment["relationships"]["order"]["data"] == {"type": "orders", "id": "ORDER00004"}
        assert [(o["type"], o["id"]) for o in included["included"]] == [("orders", "ORDER00004")]

        by_token = api.get(
            "/api/external_payments", **{"filter[q][payment_source_token_eq]": "tok_7"}
        )
        assert [d["id"] for d in by_token.json()["data"]] == [ids["ORDER00007"]]
        by_ref = api.get("/api/external_payments", **{"filter[q][reference_eq]": "REF-0"}).json()
        assert by_ref["meta"]["record_count"] == 4

        first = api.get("/api/external_payments").json()
        assert len(first["data"]) == 10  # the default page size
        assert first["meta"] == {"record_count": 12, "page_count": 2}
        assert "page[number]=2" in first["links"]["next"]
        second = api.get(
            "/api/external_payments", **{"page[number]": "2", "page[size]": "10"}
        ).json()
        assert len(second["data"]) == 2
        assert "next" not in second["links"]
        assert {d["id"] for d in first["data"] + second["data"]} == set(ids.values())
        assert len(api.get("/api/external_payments", **{"page[size]": "25"}).json()["data"]) == 12


@pytest.mark.parametrize(
    "params",
    [
        {"page[size]": "26"},
        {"page[size]": "0"},
        {"page[number]": "x"},
        {"filter[q][status_eq]": "paid"},
        {"include": "payment_gateway"},
        {"sort": "-amount_cents"},
        {"fields[external_payments]": "amount_cents"},
        {"fields[skus]": "code"},
    ],
)
def test_list_refuses_unknown_or_out_of_range_parameters(api: Api, params: dict[str, str]) -> None:
    response = api.get("/api/external_payments", **params)
    assert response.status_code == 400
    error = first_error(response)
    assert error["code"] == "PARAM_NOT_ALLOWED"
    assert error["source"]["parameter"] in params


def test_show_payment_and_unknown_ids(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(limits=None)
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        payment_id = api.create(PENDING).json()["data"]["id"]
        shown = api.get(f"/api/external_payments/{payment_id}", include="order").json()
        assert shown["data"]["relationships"]["order"]["data"]["id"] == PENDING
        assert shown["included"][0]["attributes"]["status"] == "pending"
        sparse = api.get(
            f"/api/external_payments/{payment_id}", **{"fields[external_payments]": "reference"}
        ).json()
        assert set(sparse["data"]["attributes"]) == {"reference"}
        for path in ("/api/external_payments/nope", "/api/orders/Zz9Zz9Zz9Z"):
            response = api.get(path)
            assert response.status_code == 404
            assert first_error(response)["code"] == "RECORD_NOT_FOUND"


# -- rate limits ---------------------------------------------------------------------------


def test_rate_limit_headers_429_and_retry_after(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(open_orders=True, limits=(Limit(3, 60.0, "class"),))
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        responses = [api.create(f"ORDER{n:05d}") for n in range(3)]
        assert [r.status_code for r in responses] == [201, 201, 201]
        assert [r.headers["X-Ratelimit-Remaining"] for r in responses] == ["2", "1", "0"]
        assert responses[0].headers["X-Ratelimit-Limit"] == "3"
        assert responses[0].headers["X-Ratelimit-Interval"] == "60"
        limited = api.get("/api/external_payments")  # the class window covers every endpoint
        assert limited.status_code == 429
        assert first_error(limited)["code"] == "TOO_MANY_REQUESTS"
        assert 59 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.headers["X-Ratelimit-Remaining"] == "0"
    log = server.request_log()
    assert [(r.status, r.accepted) for r in log if r.path.startswith("/api/")] == [
        (201, True),
        (201, True),
        (201, True),
        (429, False),
    ]


def test_rate_limit_windows_slide_and_endpoints_count_apart(
    sandbox_factory: SandboxFactory,
) -> None:
    server = sandbox_factory(
        open_orders=True, limits=(Limit(2, 0.5, "endpoint"),), retry_after=False
    )
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        assert [api.create(f"ORDER{n:05d}").status_code for n in range(3)] == [201, 201, 429]
        assert "Retry-After" not in api.create("ORDER00009").headers
        assert api.get("/api/external_payments").status_code == 200  # another endpoint
        time.sleep(0.55)
        assert api.create("ORDER00003").status_code == 201
    assert len(server.payments_by_order()) == 3


# -- faults --------------------------------------------------------------------------------


def test_5xx_fault_answers_html_and_creates_nothing(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(open_orders=True, limits=None, faults=Faults(p_5xx=1.0), seed=3)
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        statuses = set()
        for n in range(8):
            response = api.create(f"ORDER{n:05d}")
            assert response.headers["content-type"].startswith("text/html")
            statuses.add(response.status_code)
        assert statuses <= {500, 503}
        assert api.get("/api/external_payments").status_code == 200  # only the POST fails
    assert server.payments_by_order() == {}


@pytest.mark.parametrize(
    ("faults", "created"),
    [(Faults(p_drop_before=1.0), False), (Faults(p_drop_after=1.0), True)],
)
def test_dropped_connections(
    sandbox_factory: SandboxFactory, faults: Faults, created: bool
) -> None:
    server = sandbox_factory(open_orders=True, limits=None, faults=faults)
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        with pytest.raises(httpx.RemoteProtocolError):
            api.create("ORDER00001")
    assert ("ORDER00001" in server.payments_by_order()) is created
    [record] = [r for r in server.request_log() if r.path == "/api/external_payments"]
    assert record.status is None
    assert record.accepted


def test_late_response_creates_the_payment_before_answering(
    sandbox_factory: SandboxFactory,
) -> None:
    faults = Faults(p_late=1.0, late_seconds=0.6)
    server = sandbox_factory(open_orders=True, limits=None, faults=faults)
    with httpx.Client(base_url=server.base_url, timeout=0.2) as c:
        api = Api(server, c)
        with pytest.raises(httpx.ReadTimeout):
            api.create("ORDER00001")
        assert len(server.payments_by_order()["ORDER00001"]) == 1
        c.timeout = httpx.Timeout(5.0)
        started = time.monotonic()
        assert api.create("ORDER00002").status_code == 201
        assert time.monotonic() - started >= 0.55


def test_storm_429s_are_not_counted(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(open_orders=True, limits=(Limit(5, 60.0),), faults=Faults(storm_p=1.0))
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        stormed = api.create("ORDER00001")
        assert stormed.status_code == 429
        assert stormed.headers["Retry-After"] == "1"
        reads = api.get("/api/external_payments")  # storms hit the create endpoint only
        assert reads.status_code == 200
        assert reads.headers["X-Ratelimit-Remaining"] == "4"  # the stormed POST was not counted
    assert server.payments_by_order() == {}
    assert [r.accepted for r in server.request_log() if r.path.startswith("/api/")] == [
        False,
        True,
    ]


def test_latency_jitter_slows_every_api_request(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(
        open_orders=True, limits=None, faults=Faults(latency_ms=(150.0, 200.0))
    )
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        started = time.monotonic()
        assert api.get("/api/orders/ORDER00001").status_code == 200
        assert time.monotonic() - started >= 0.15


def test_request_log_masks_token_filters(api: Api) -> None:
    api.get("/api/external_payments", **{"filter[q][payment_source_token_eq]": "tok_secret_9876"})
    [record] = [r for r in api.server.request_log() if r.method == "GET"]
    assert "tok_secret" not in record.query
    assert record.query.endswith("****9876")
