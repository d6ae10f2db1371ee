"""Orders in the sandbox over real HTTP: numbers, statuses, payment methods, the active
payment source, include and sparse fields, strict filters, and the second-source rule."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sandbox_client import Api, first_error

from batch.sandbox import SandboxServer

SandboxFactory = Callable[..., SandboxServer]
PENDING = "tH41tk7mXH"  # seeded: number 24001, external method, no source
PLACED = "JDTAoEIS5e"
ORDER_FIELDS = "status,number,payment_source,payment_method"


@pytest.fixture
def seeded(sandbox_factory: SandboxFactory) -> Iterator[Api]:
    """The packaged seed orders only, no limits."""
    server = sandbox_factory(limits=None, token_limit=None)
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        yield Api(server, c)


def lookup(api: Api, path: str = "/api/orders", **params: str) -> dict[str, Any]:
    response = api.get(path, **params)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in doc["data"]}


def included(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["type"], r["id"]): r for r in doc.get("included", [])}


def test_orders_lookup_with_include_and_sparse_fields(seeded: Api) -> None:
    ids = [PENDING, "CardChk001", "ExtOther01", "NoMethod01", "Zz9Zz9Zz9Z"]
    doc = lookup(
        seeded,
        **{
            "filter[q][id_in]": ",".join(ids),
            "include": "payment_source,payment_method",
            "fields[orders]": ORDER_FIELDS,
            "fields[external_payments]": "payment_source_token",
            "fields[payment_methods]": "payment_source_type",
            "fields[stripe_payments]": "payment_instrument",
        },
    )
    assert doc["meta"] == {"record_count": 4, "page_count": 1}
    orders = by_id(doc)
    assert set(orders) == set(ids[:4])  # the unknown id is simply absent
    for order in orders.values():
        assert set(order["attributes"]) == {"status", "number"}
        assert set(order["relationships"]) == {"payment_source", "payment_method"}
    assert orders[PENDING]["attributes"] == {"status": "pending", "number": "24001"}
    assert orders[PENDING]["relationships"]["payment_source"]["data"] is None
    assert orders["NoMethod01"]["relationships"]["payment_method"]["data"] is None
    side = included(doc)
    card = orders["CardChk001"]["relationships"]["payment_source"]["data"]
    assert card["type"] == "stripe_payments"
    assert side[(card["type"], card["id"])]["attributes"] == {
        "payment_instrument": {
            "issuer_type": "card",
            "card_type": "visa",
            "card_last_digits": "4242",
        }
    }
    stripe = orders["CardChk001"]["relationships"]["payment_method"]["data"]
    assert side[(stripe["type"], stripe["id"])]["attributes"] == {
        "payment_source_type": "stripe_payments"
    }
    other = orders["ExtOther01"]["relationships"]["payment_source"]["data"]
    assert other["type"] == "external_payments"
    assert side[("external_payments", other["id"])]["attributes"] == {
        "payment_source_token": "ext_seeded_other_0001"
    }
    external = orders[PENDING]["relationships"]["payment_method"]["data"]
    assert side[("payment_methods", external["id"])]["attributes"] == {
        "payment_source_type": "external_payments"
    }
    # One method shared by several orders is included once.
    assert len(doc["included"]) == len(side) == 4


def test_a_relationship_must_be_included_and_listed(seeded: Api) -> None:
    only_source = lookup(seeded, **{"filter[q][id_eq]": "ExtOther01", "include": "payment_source"})
    [order] = only_source["data"]
    assert "data" in order["relationships"]["payment_source"]
    assert "data" not in order["relationships"]["payment_method"]
    assert [r["type"] for r in only_source["included"]] == ["external_payments"]
    unlisted = lookup(
        seeded,
        **{
            "filter[q][id_eq]": "ExtOther01",
            "include": "payment_source",
            "fields[orders]": "status",
        },
    )
    assert unlisted["included"] == []
    assert unlisted["data"][0]["relationships"] == {}
    plain = lookup(seeded, **{"filter[q][id_eq]": "ExtOther01"})
    assert "included" not in plain
    assert all("data" not in rel for rel in plain["data"][0]["relationships"].values())


def test_nested_include_names_the_gateway(seeded: Api) -> None:
    doc = lookup(
        seeded,
        **{
            "filter[q][id_in]": f"{PENDING},StripeNo01",
            "include": "payment_method.payment_gateway",
        },
    )
    gateways = {t for t, _ in included(doc)} - {"payment_methods"}
    assert gateways == {"external_gateways", "stripe_gateways"}


def test_orders_by_number(seeded: Api) -> None:
    doc = lookup(seeded, **{"filter[q][number_in]": "24001,24103,99999999"})
    assert {(o["id"], o["attributes"]["number"]) for o in doc["data"]} == {
        (PENDING, "24001"),
        ("ExtOther01", "24103"),
    }
    [one] = lookup(seeded, **{"filter[q][number_eq]": "24105"})["data"]
    assert one["id"] == "StripeNo01"


def test_number_filter_unsupported(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(limits=None, number_filter=False)
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        for key in ("filter[q][number_in]", "filter[q][number_eq]"):
            refused = api.get("/api/orders", **{key: "24001"})
            assert refused.status_code == 400
            assert first_error(refused)["source"] == {"parameter": key}
        assert api.get("/api/orders", **{"filter[q][id_in]": PENDING}).status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"filter[q][email_eq]": "a@b.c"},
        {"filter[q][number_like]": "24"},
        {"filter[number]": "24001"},
        {"include": "market"},
        {"include": "payment_source.order"},
        {"fields[orders]": "status,total_amount_cents"},
        {"fields[stripe_payments]": "payment_source_token"},
        {"page[size]": "26"},
        {"sort": "email"},
    ],
)
def test_orders_refuse_what_is_not_allowed(seeded: Api, params: dict[str, str]) -> None:
    response = seeded.get("/api/orders", **params)
    assert response.status_code == 400
    error = first_error(response)
    assert error["code"] == "PARAM_NOT_ALLOWED"
    assert error["source"]["parameter"] in params


def test_show_order_filters_are_not_allowed(seeded: Api) -> None:
    response = seeded.get(f"/api/orders/{PENDING}", **{"filter[q][id_eq]": PENDING})
    assert response.status_code == 400


def test_orders_pages_and_cursor(seeded: Api) -> None:
    total = len(seeded.server.store.orders())
    first = lookup(seeded, **{"page[size]": "25", "sort": "id"})
    assert first["meta"] == {"record_count": total, "page_count": -(-total // 25)}
    assert len(first["data"]) == 25
    ids = [o["id"] for o in first["data"]]
    assert ids == sorted(ids)
    after = lookup(seeded, **{"page[size]": "25", "sort": "id", "filter[q][id_gt]": ids[-1]})
    assert after["meta"]["record_count"] == total - 25
    assert min(o["id"] for o in after["data"]) > ids[-1]
    default = lookup(seeded)
    assert len(default["data"]) == 10


def test_show_order_includes_its_active_card_source(seeded: Api) -> None:
    doc = lookup(seeded, "/api/orders/CardExt001", include="payment_source,payment_method")
    source = doc["data"]["relationships"]["payment_source"]["data"]
    assert source["type"] == "stripe_payments"
    assert {(r["type"], r["id"]) for r in doc["included"]} == {
        (source["type"], source["id"]),
        ("payment_methods", doc["data"]["relationships"]["payment_method"]["data"]["id"]),
    }


def test_external_payments_of_orders_include_orphans(seeded: Api) -> None:
    doc = lookup(
        seeded,
        "/api/external_payments",
        include="order",
        **{
            "filter[q][order_id_in]": f"ExtTwice01,ExtOther01,{PENDING}",
            "fields[external_payments]": "payment_source_token,order",
            "fields[orders]": "number",
        },
    )
    found = sorted(
        (p["relationships"]["order"]["data"]["id"], p["attributes"]["payment_source_token"])
        for p in doc["data"]
    )
    assert found == [
        ("ExtOther01", "ext_seeded_other_0001"),
        ("ExtTwice01", "ext_seeded_first_0001"),
        ("ExtTwice01", "ext_seeded_second_0001"),
    ]
    assert {r["attributes"]["number"] for r in doc["included"]} == {"24103", "24104"}
    # The order points at the second one; the first is an orphan.
    [order] = lookup(seeded, **{"filter[q][id_eq]": "ExtTwice01", "include": "payment_source"})[
        "data"
    ]
    active = order["relationships"]["payment_source"]["data"]["id"]
    [second] = [p for p in doc["data"] if p["id"] == active]
    assert second["attributes"]["payment_source_token"] == "ext_seeded_second_0001"


@pytest.mark.parametrize("order_id", ["ExtOther01", "CardExt001"])
def test_second_source_repoints_and_orphans(seeded: Api, order_id: str) -> None:
    before = lookup(seeded, f"/api/orders/{order_id}", include="payment_source")
    old = before["data"]["relationships"]["payment_source"]["data"]
    created = seeded.create(order_id, "tok_new_0001")
    assert created.status_code == 201
    after = lookup(seeded, f"/api/orders/{order_id}", include="payment_source")
    active = after["data"]["relationships"]["payment_source"]["data"]
    assert active == {"type": "external_payments", "id": created.json()["data"]["id"]}
    assert active != old
    payments = seeded.server.payments_of(order_id)
    tokens = [p.token for p in payments]
    assert tokens[-1] == "tok_new_0001"
    assert len(tokens) == (2 if old["type"] == "external_payments" else 1)
    listed = lookup(seeded, "/api/external_payments", **{"filter[q][order_id_eq]": order_id})
    assert listed["meta"]["record_count"] == len(tokens)  # the orphan is still listed


def test_second_source_refused(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(limits=None, second_source="refuse")
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        for order_id, kind in (("ExtOther01", "external_payments"), ("CardChk001", "")):
            refused = api.create(order_id, "tok_new_0002")
            assert refused.status_code == 422
            error = first_error(refused)
            assert error["code"] == "VALIDATION_ERROR"
            assert error["source"] == {"pointer": "/data/relationships/order"}
            assert kind in error["detail"]
        assert api.create(PENDING).status_code == 201
        assert api.create(PENDING).status_code == 422
    assert [p.token for p in server.payments_of("ExtOther01")] == ["ext_seeded_other_0001"]
    assert len(server.payments_of(PENDING)) == 1


@pytest.mark.parametrize(
    ("order_id", "words"),
    [
        ("StripeNo01", "external payment gateway"),
        ("NoMethod01", "external payment gateway"),
        ("Cancel0001", "cancelled"),
        (PLACED, "placed"),
        ("EdR5w9T7Mh", "draft"),
    ],
)
def test_create_needs_a_pending_order_with_an_external_method(
    seeded: Api, order_id: str, words: str
) -> None:
    refused = seeded.create(order_id)
    assert refused.status_code == 422
    error = first_error(refused)
    assert error["code"] == "VALIDATION_ERROR"
    assert error["source"] == {"pointer": "/data/relationships/order"}
    assert words in error["detail"]
    assert seeded.server.payments_of(order_id) == []


def test_ignore_filters_answers_unrelated_records(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(limits=None, ignore_filters=True)
    server.add_order("LateOrder1", number="55501")
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        doc = lookup(api, **{"filter[q][id_in]": "LateOrder1", "filter[q][bogus_eq]": "x"})
        payments = lookup(api, "/api/external_payments", **{"filter[q][order_id_eq]": "LateOrder1"})
    assert doc["meta"]["record_count"] == len(server.store.orders())
    assert "LateOrder1" not in by_id(doc)  # the first page holds other orders
    assert payments["meta"]["record_count"] == 4  # the seeded payments of other orders


def test_open_orders_exist_for_ids_and_numbers(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(orders={}, open_orders=True, limits=None)
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        by_ids = lookup(
            api, **{"filter[q][id_in]": "MyOrder001,MyOrder002", "include": "payment_method"}
        )
        assert {o["id"]: o["attributes"]["status"] for o in by_ids["data"]} == {
            "MyOrder001": "pending",
            "MyOrder002": "pending",
        }
        [numbered] = lookup(api, **{"filter[q][number_in]": "770001"})["data"]
        assert numbered["attributes"]["number"] == "770001"
        assert numbered["id"] not in ("MyOrder001", "MyOrder002")
        assert api.create(numbered["id"]).status_code == 201
        # Looked up again, the same number is the same order.
        [again] = lookup(api, **{"filter[q][number_eq]": "770001"})["data"]
        assert again["id"] == numbered["id"]


def test_add_order_helper_and_payment_counts(sandbox: SandboxServer) -> None:
    order = sandbox.add_order(
        "Helper0001", number="31337", payment_source="card|external:tok_helper_1"
    )
    assert order.payment_source is not None
    assert order.payment_source.type == "external_payments"
    [payment] = sandbox.payments_of("Helper0001")
    assert (payment.token, payment.seeded) == ("tok_helper_1", True)
    assert "Helper0001" not in sandbox.payments_by_order()  # only payments made by clients
    assert len(sandbox.payments_by_order(seeded=True)["Helper0001"]) == 1
    with pytest.raises(ValueError, match="not a payment source"):
        sandbox.add_order("Helper0002", payment_source="paypal")
    with pytest.raises(ValueError, match="status"):
        sandbox.add_order("Helper0003", status="paid")


def test_control_route_seeds_orders_from_another_process(sandbox: SandboxServer) -> None:
    url = sandbox.base_url + "/_sandbox/orders"
    made = httpx.post(url, json={"id": "Remote0001", "number": 4242, "payment_source": "card"})
    assert made.status_code == 201
    assert made.json()["number"] == "4242"
    assert made.json()["payment_source"]["type"] == "stripe_payments"
    order = sandbox.store.order("Remote0001")
    assert order is not None
    assert (order.status, order.payment_method) == ("pending", "external")
    for bad in ({"id": "R2", "status": "paid"}, {"id": "R3", "colour": "red"}, {"number": "1"}):
        refused = httpx.post(url, json=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"]
