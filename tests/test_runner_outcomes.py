"""Each row of the outcome table, driven through the real runner with a scripted transport."""

import asyncio
import base64
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from batch.config import ApiConfig, RunOptions, Secret
from batch.journal import Journal, RowState
from batch.runner import RunResult, run_payments

BASE = "https://demo.commercelayer.io"
CONFIG = ApiConfig(
    base_url=BASE,
    auth_url="https://auth.commercelayer.io/oauth/token",
    client_id="cid",
    client_secret=Secret("the-secret"),
)
CREATED = "created"


def jwt(n: int) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"test": True, "n": n}).encode()).decode()
    return f"e30.{claims.rstrip('=')}.sig"


class Server:
    """A scripted Commerce Layer: per order, the answers its POSTs get, in order.

    Orders are pending with an external payment method unless `orders` says otherwise;
    a created payment becomes the order's active source (the API re-points it).
    """

    def __init__(
        self, script: dict[str, list[object]], orders: dict[str, dict[str, object]] | None = None
    ) -> None:
        self.script = {order: list(answers) for order, answers in script.items()}
        self.orders = orders or {}
        self.posts: dict[str, list[dict[str, object]]] = defaultdict(list)
        self.payments: dict[str, list[str]] = defaultdict(list)
        self.tokens_of: dict[str, str] = {}
        self.lookups: list[str] = []  # order ids of each external-payments lookup
        self.order_lookups: list[str] = []
        self.tokens = 0

    def order_doc(self, oid: str) -> tuple[dict[str, object], list[dict[str, object]]]:
        spec = {"status": "pending", "method": "external_payments", "source": None}
        spec.update(self.orders.get(oid, {}))
        included: list[dict[str, object]] = []
        rels: dict[str, object] = {}
        if spec["method"]:
            rels["payment_method"] = {"data": {"type": "payment_methods", "id": f"PM-{oid}"}}
            included.append(
                {
                    "type": "payment_methods",
                    "id": f"PM-{oid}",
                    "attributes": {"payment_source_type": spec["method"]},
                }
            )
        source = spec["source"]
        if source is None and self.payments[oid]:
            source = ("external_payments", self.payments[oid][-1])
        if source is not None:
            kind, sid = source  # type: ignore[misc]
            rels["payment_source"] = {"data": {"type": kind, "id": sid}}
        doc = {
            "type": "orders",
            "id": oid,
            "attributes": {"status": spec["status"], "number": oid},
            "relationships": rels,
        }
        return doc, included

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.tokens += 1
            return httpx.Response(200, json={"access_token": jwt(self.tokens), "expires_in": 7200})
        if request.method == "GET" and request.url.path == "/api/orders":
            ids = request.url.params["filter[q][id_in]"].split(",")
            self.order_lookups.append(",".join(ids))
            data, included = [], []
            for oid in ids:
                if self.orders.get(oid, {}).get("missing"):
                    continue
                doc, inc = self.order_doc(oid)
                data.append(doc)
                included += inc
            body = {"data": data, "included": included, "meta": {"page_count": 1}}
            return httpx.Response(200, json=body)
        if request.method == "GET":
            ids = request.url.params["filter[q][order_id_in]"].split(",")
            self.lookups.append(",".join(ids))
            data = [
                {
                    "id": pid,
                    "type": "external_payments",
                    "attributes": {"payment_source_token": self.tokens_of.get(pid, "tok_" + oid)},
                    "relationships": {"order": {"data": {"type": "orders", "id": oid}}},
                }
                for oid in ids
                for pid in self.payments[oid]
            ]
            return httpx.Response(200, json={"data": data, "meta": {"page_count": 1}})
        doc = json.loads(request.content)
        order = doc["data"]["relationships"]["order"]["data"]["id"]
        self.posts[order].append(doc)
        answer = self.script[order].pop(0) if self.script.get(order) else CREATED
        if answer == "invalid_token":
            if request.headers["Authorization"] == f"Bearer {jwt(1)}":
                return httpx.Response(401, json={"errors": [{"code": "INVALID_TOKEN"}]})
            answer = CREATED
        if answer in (CREATED, "lost", "garbled"):
            pid = f"PAY-{order}-{len(self.payments[order])}"
            self.payments[order].append(pid)
            if answer == "lost":
                raise httpx.ReadTimeout("lost", request=request)
            if answer == "garbled":  # created, but the answer's body does not decode
                return httpx.Response(
                    201, content=b"not gzip", headers={"Content-Encoding": "gzip"}
                )
            return httpx.Response(201, json={"data": {"id": pid, "type": "external_payments"}})
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        return answer


def run(tmp_path: Path, server: Server, orders: list[str], **options: object) -> RunResult:
    return run_with(tmp_path, server, orders, **options)


def run_with(
    tmp_path: Path,
    handler: Callable[[httpx.Request], httpx.Response],
    orders: list[str],
    **options: object,
) -> RunResult:
    csv = tmp_path / "in.csv"
    csv.write_text(
        "order_id,payment_source_token\n" + "".join(f"{o},tok_{o}\n" for o in orders),
        encoding="utf-8",
    )
    opts = RunOptions(
        input_path=csv,
        report_path=tmp_path / "report.csv",
        state_path=tmp_path / "state.sqlite",
        xlsx=False,
        settle_delay=0.0,
        timeout=0.05,  # settling waits timeout + settle delay after the send
        rate_limits=("100000/1s",),
        **{"fail_fast_after": 0, **options},  # type: ignore[arg-type]
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))

    async def main() -> RunResult:
        async with client:
            return await run_payments(opts, CONFIG, client=client, sleep=no_sleep)

    return asyncio.run(main())


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def report(tmp_path: Path) -> dict[str, dict[str, str]]:
    import csv

    with (tmp_path / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        return {r["order_id"]: r for r in csv.DictReader(f)}


def states(tmp_path: Path) -> dict[str, RowState]:
    j = Journal.open(tmp_path / "state.sqlite")
    try:
        return {r.order_id: r.state for r in j.records()}
    finally:
        j.close()


def r(status: int, body: object = None, **headers: str) -> httpx.Response:
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body or {"errors": [{"code": "X"}]}, headers=headers)


def test_429_resends_the_same_payload_and_is_not_an_attempt(tmp_path: Path) -> None:
    server = Server({"A": [r(429, Retry_After="0"), r(429)]})
    result = run(tmp_path, server, ["A"])
    assert result.exit_code == 0
    assert len(server.posts["A"]) == 3
    assert server.posts["A"][0] == server.posts["A"][2]
    assert report(tmp_path)["A"]["attempts"] == "1"
    assert server.lookups == ["A"], "the preflight only: a 429 is never settled"


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.PoolTimeout("pool"),
        r(423),
    ],
    ids=["connect-error", "connect-timeout", "pool-timeout", "423"],
)
def test_not_sent_is_resent_without_lookup(tmp_path: Path, failure: object) -> None:
    server = Server({"A": [failure]})
    result = run(tmp_path, server, ["A"])
    assert result.exit_code == 0
    assert len(server.payments["A"]) == 1
    assert server.lookups == ["A"], "the preflight only: never sent means no settling"


def test_invalid_token_refreshes_once_then_resends(tmp_path: Path) -> None:
    server = Server({"A": ["invalid_token"]})
    result = run(tmp_path, server, ["A"])
    assert result.exit_code == 0
    assert server.tokens == 2
    assert report(tmp_path)["A"]["status"] == "created"


@pytest.mark.parametrize(
    "lost",
    [
        "lost",  # created, answer lost
        "garbled",  # created, answer cannot be decoded
        r(500, "<html>oops</html>"),
        r(502, "<html>bad gateway</html>"),
        r(503, "<html>unavailable</html>"),
        r(504, "<html>timeout</html>"),
        r(408),  # maybe a stale idle-timeout answer that crossed the request
        httpx.RemoteProtocolError("closed"),
        httpx.ReadError("reset"),
    ],
    ids=[
        "lost-response",
        "undecodable-answer",
        "500",
        "502",
        "503",
        "504",
        "408",
        "closed",
        "reset",
    ],
)
def test_unknown_outcome_is_settled_by_lookup_never_resent_blindly(
    tmp_path: Path, lost: object
) -> None:
    server = Server({"A": [lost], "B": []})
    result = run(tmp_path, server, ["A", "B"])
    assert result.exit_code == 0
    created = lost in ("lost", "garbled")
    # The preflight of both, then only the unknown row: once when it is there, twice
    # (two negative lookups) before a resend when it is not.
    assert server.lookups == ["A,B", "A"] if created else ["A,B", "A", "A"]
    assert len(server.payments["A"]) == 1, "exactly one payment"
    line = report(tmp_path)["A"]
    assert line["status"] == "created"
    assert line["external_payment_id"] == server.payments["A"][0]
    # Resent only when the lookups found nothing.
    assert len(server.posts["A"]) == (1 if created else 2)


@pytest.mark.parametrize("status", [400, 404, 422])
def test_4xx_is_permanent_and_recorded(tmp_path: Path, status: int) -> None:
    error = {"errors": [{"code": "VALIDATION_ERROR", "detail": "nope", "status": str(status)}]}
    server = Server({"A": [r(status, error)]})
    result = run(tmp_path, server, ["A", "B"])
    assert result.exit_code == 1
    line = report(tmp_path)["A"]
    assert (line["status"], line["http_status"], line["error_code"], line["error_detail"]) == (
        "failed",
        str(status),
        "VALIDATION_ERROR",
        "nope",
    )
    assert len(server.posts["A"]) == 1
    assert states(tmp_path)["A"] is RowState.FAILED
    # The rerun does not resend a permanent failure of the same payload.
    again = run(tmp_path, server, ["A", "B"])
    assert len(server.posts["A"]) == 1
    assert again.counts == {"failed": 1, "already_created": 1}


def test_retries_are_bounded_and_the_next_run_retries(tmp_path: Path) -> None:
    server = Server({"A": [httpx.ConnectError("down")] * 4})
    result = run(tmp_path, server, ["A"], max_attempts=3)
    assert result.exit_code == 1
    assert len(server.posts["A"]) == 3
    assert states(tmp_path)["A"] is RowState.RETRYABLE
    assert "next run" in report(tmp_path)["A"]["error_detail"]
    again = run(tmp_path, server, ["A"], max_attempts=3)
    assert again.exit_code == 0
    assert len(server.posts["A"]) == 5
    assert len(server.payments["A"]) == 1
    assert report(tmp_path)["A"]["status"] == "created"


def test_token_endpoint_failing_mid_run_still_writes_the_report(tmp_path: Path) -> None:
    """The token expires mid-run and cannot be renewed: stop, report, settle next run."""
    server = Server({"B": ["expired"], "C": ["expired"]})
    original = server.__call__

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token" and server.tokens >= 1:
            return httpx.Response(503, text="<html>down</html>")
        if request.url.path == "/oauth/token" or request.method != "POST":
            return original(request)
        doc = json.loads(request.content)
        order = doc["data"]["relationships"]["order"]["data"]["id"]
        if server.script.get(order) == ["expired"]:
            return httpx.Response(401, json={"errors": [{"code": "INVALID_TOKEN"}]})
        return original(request)

    server.__call__ = handler  # type: ignore[method-assign]
    result = run_with(tmp_path, handler, ["A", "B", "C"], concurrency=1)
    assert result.exit_code == 1
    assert "could not get an access token" in result.message
    lines = report(tmp_path)
    assert lines["A"]["status"] == "created"
    assert {lines["B"]["status"], lines["C"]["status"]} <= {"failed", "not_attempted"}
    # Nothing left claims a payment the server does not have.
    assert states(tmp_path)["A"] is RowState.CREATED


def test_fail_fast_leaves_its_rows_retryable_for_the_fixed_configuration(
    tmp_path: Path,
) -> None:
    not_found = {"errors": [{"code": "RECORD_NOT_FOUND", "status": "404"}]}
    orders = [f"O{i}" for i in range(5)]
    wrong_org = Server({o: [r(404, not_found)] for o in orders})
    result = run(tmp_path, wrong_org, orders, fail_fast_after=3, concurrency=1)
    assert result.exit_code == 4
    assert "configuration problem" in result.message
    assert list(states(tmp_path).values()).count(RowState.RETRYABLE) == 3
    fixed = Server({})
    again = run(tmp_path, fixed, orders, fail_fast_after=3)
    assert again.exit_code == 0
    assert sorted(fixed.payments) == orders


def test_409_on_a_post_is_an_unknown_outcome_settled_by_lookup(tmp_path: Path) -> None:
    not_unique = {"errors": [{"code": "VALIDATION_ERROR", "detail": "not unique"}]}
    server = Server({"A": [r(409, not_unique)]})
    result = run(tmp_path, server, ["A"])
    assert result.exit_code == 0
    assert server.lookups == ["A", "A", "A"]  # preflight, then two negatives before a resend
    assert len(server.payments["A"]) == 1


def test_409_type_mismatch_is_final(tmp_path: Path) -> None:
    mismatch = {"errors": [{"code": "TYPE_MISMATCH", "source": {"pointer": "/data/type"}}]}
    server = Server({"A": [r(409, mismatch)]})
    result = run(tmp_path, server, ["A"])
    assert result.exit_code == 1
    assert report(tmp_path)["A"]["error_code"] == "TYPE_MISMATCH"
    assert server.lookups == ["A"]
    assert len(server.posts["A"]) == 1


def test_a_lost_state_file_never_pays_twice(tmp_path: Path) -> None:
    server = Server({})
    assert run(tmp_path, server, ["A", "B"]).exit_code == 0
    (tmp_path / "state.sqlite").unlink()
    for extra in ("-wal", "-shm"):
        (tmp_path / f"state.sqlite{extra}").unlink(missing_ok=True)
    again = run(tmp_path, server, ["A", "B"])
    assert again.exit_code == 0
    assert again.counts == {"already_created": 2}
    assert {o: len(p) for o, p in server.payments.items()} == {"A": 1, "B": 1}
    assert report(tmp_path)["A"]["external_payment_id"] == server.payments["A"][0]


CARD = ("stripe_payments", "card_1")


@pytest.mark.parametrize(
    ("order", "code", "detail"),
    [
        ({"source": CARD}, "ORDER_HAS_PAYMENT_SOURCE", "stripe_payments card_1"),
        ({"status": "placed"}, "ORDER_NOT_PENDING", "placed"),
        ({"status": "draft"}, "ORDER_NOT_PENDING", "draft"),
        ({"method": None}, "NO_EXTERNAL_PAYMENT_METHOD", "external"),
        ({"method": "stripe_payments"}, "NO_EXTERNAL_PAYMENT_METHOD", "external"),
        ({"missing": True}, "RECORD_NOT_FOUND", "does not exist"),
    ],
    ids=["card-source", "placed", "draft", "no-method", "card-method", "not-found"],
)
def test_preflight_refusals_send_nothing_and_are_retried_next_run(
    tmp_path: Path, order: dict[str, object], code: str, detail: str
) -> None:
    server = Server({}, orders={"A": order})
    result = run(tmp_path, server, ["A", "B"])
    assert result.exit_code == 1
    line = report(tmp_path)["A"]
    assert (line["status"], line["error_code"]) == ("failed", code)
    assert detail in line["error_detail"]
    assert "A" not in server.posts
    assert len(server.payments["B"]) == 1
    server.orders = {}  # fixed on the dashboard
    again = run(tmp_path, server, ["A", "B"])
    assert again.exit_code == 0
    assert len(server.posts["A"]) == 1


def test_another_tokens_payment_is_never_replaced(tmp_path: Path) -> None:
    server = Server({})
    server.payments["A"].append("PAY-other")
    server.tokens_of["PAY-other"] = "tok_someone_else"
    result = run(tmp_path, server, ["A"])
    assert result.exit_code == 1
    line = report(tmp_path)["A"]
    assert (line["status"], line["error_code"]) == ("failed", "ORDER_HAS_PAYMENT_SOURCE")
    assert "PAY-other" in line["error_detail"]
    assert "A" not in server.posts


def test_our_payment_replaced_by_another_source_is_flagged(tmp_path: Path) -> None:
    server = Server({}, orders={"A": {"source": CARD}})
    server.payments["A"].append("PAY-ours")  # this row's token, but a card is active
    result = run(tmp_path, server, ["A"])
    assert result.exit_code == 1
    line = report(tmp_path)["A"]
    assert (line["status"], line["error_code"]) == ("failed", "SOURCE_REPLACED")
    assert line["external_payment_id"] == "PAY-ours"
    assert "A" not in server.posts


def test_extra_payments_are_listed_and_nothing_is_sent(tmp_path: Path) -> None:
    server = Server({})
    server.payments["A"] += ["PAY-1", "PAY-2"]
    result = run(tmp_path, server, ["A"])
    assert result.exit_code == 1
    line = report(tmp_path)["A"]
    assert (line["status"], line["error_code"]) == ("failed", "EXTRA_PAYMENTS")
    assert "PAY-1" in line["error_detail"]
    assert "PAY-2" in line["error_detail"]
    assert "A" not in server.posts


def test_token_changed_since_created_is_flagged_and_exits_1(tmp_path: Path) -> None:
    server = Server({})
    assert run(tmp_path, server, ["A"]).exit_code == 0
    csv = tmp_path / "in.csv"
    csv.write_text("order_id,payment_source_token\nA,tok_changed\n", encoding="utf-8")
    opts = RunOptions(
        input_path=csv,
        report_path=tmp_path / "report.csv",
        state_path=tmp_path / "state.sqlite",
        xlsx=False,
        rate_limits=("100000/1s",),
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(server))

    async def main() -> RunResult:
        async with client:
            return await run_payments(opts, CONFIG, client=client, sleep=no_sleep)

    result = asyncio.run(main())
    assert result.exit_code == 1
    line = report(tmp_path)["A"]
    assert (line["status"], line["error_code"]) == ("already_created", "TOKEN_CHANGED")
    assert len(server.posts["A"]) == 1


def test_wrong_organization_fails_fast_on_the_preflight_before_any_post(
    tmp_path: Path,
) -> None:
    orders = [f"O{i}" for i in range(30)]
    server = Server({}, orders={o: {"missing": True} for o in orders})
    result = run(tmp_path, server, orders, fail_fast_after=3)
    assert result.exit_code == 4
    assert "configuration problem" in result.message
    assert server.posts == {}
