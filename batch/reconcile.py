"""`paybatch reconcile`: audit every payment the state file says we created against the server.

For each order recorded as created, the server must have that external payment, on that
order, carrying that row's token (compared by SHA-256), and no other payment for the order.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from batch.api import LOOKUP_BATCH, CommerceLayer, FoundPayment, HttpClient, open_client
from batch.config import ApiConfig
from batch.connection import connect
from batch.errors import StateError
from batch.journal import Journal, Record, RowState, binding
from batch.report import write_table

log = logging.getLogger(__name__)


class Finding(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"  # no such payment on the server
    DIFFERENT_ORDER = "different_order"  # the payment exists but belongs to another order
    DIFFERENT_TOKEN = "different_token"  # the payment carries another token than the row's
    EXTRA_PAYMENTS = "extra_payments"  # the order has more than one external payment


@dataclass(frozen=True, slots=True)
class Check:
    order_id: str
    row_number: int
    payment_id: str
    findings: tuple[Finding, ...]
    server_payment_ids: tuple[str, ...]
    detail: str

    @property
    def ok(self) -> bool:
        return self.findings == (Finding.OK,)


async def audit(api: CommerceLayer, records: Sequence[Record]) -> list[Check]:
    """Check the given created records, 25 orders to a lookup."""
    checks: list[Check] = []
    for start in range(0, len(records), LOOKUP_BATCH):
        chunk = records[start : start + LOOKUP_BATCH]
        found = await api.external_payments_for([r.order_id for r in chunk])
        by_order: dict[str, list[FoundPayment]] = {}
        for payment in found:
            by_order.setdefault(payment.order_id, []).append(payment)
        for record in chunk:
            checks.append(await _check(api, record, by_order.get(record.order_id, [])))
    return checks


async def _check(api: CommerceLayer, record: Record, payments: list[FoundPayment]) -> Check:
    findings: list[Finding] = []
    details: list[str] = []
    ours = next((p for p in payments if p.id == record.payment_id), None)
    if ours is None:
        elsewhere = await api.external_payment(record.payment_id)
        if elsewhere is None:
            findings.append(Finding.MISSING)
            details.append(f"payment {record.payment_id} does not exist on the server")
        elif elsewhere.order_id != record.order_id:
            findings.append(Finding.DIFFERENT_ORDER)
            details.append(f"payment {record.payment_id} belongs to order {elsewhere.order_id}")
        else:
            ours = elsewhere
    if ours is not None and ours.token_sha256 != record.token_sha256:
        findings.append(Finding.DIFFERENT_TOKEN)
        details.append(f"payment {record.payment_id} carries a different payment source token")
    others = [p.id for p in payments if p.id != record.payment_id]
    if others:
        findings.append(Finding.EXTRA_PAYMENTS)
        details.append(f"the order also has payment(s) {', '.join(others)}")
    return Check(
        order_id=record.order_id,
        row_number=record.row_number,
        payment_id=record.payment_id,
        findings=tuple(findings) or (Finding.OK,),
        server_payment_ids=tuple(p.id for p in payments),
        detail="; ".join(details),
    )


RECONCILE_COLUMNS = (
    "row",
    "order_id",
    "result",
    "external_payment_id",
    "server_payment_ids",
    "detail",
)


@dataclass(frozen=True, kw_only=True)
class ReconcileResult:
    checked: int
    mismatched: int
    report: Path

    @property
    def exit_code(self) -> int:
        return 0 if self.mismatched == 0 else 1


def reconcile_state(
    state_path: Path,
    api_config: ApiConfig,
    *,
    report_path: Path,
    client: HttpClient | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_secret: Callable[[str], None] = lambda _secret: None,
) -> ReconcileResult:
    """Audit every created order of the state file and write the findings, one row each."""
    if not state_path.exists():
        raise StateError(f"{state_path}: no such state file")
    journal = Journal.open(state_path)
    try:
        records = journal.records([RowState.CREATED])
        bound_to = journal.bound_to()
    finally:
        journal.close()
    on_secret(api_config.client_secret.reveal())
    checks = asyncio.run(
        _audit_online(
            records,
            api_config,
            bound_to=bound_to,
            client=client,
            clock=clock,
            sleep=sleep,
            on_secret=on_secret,
        )
    )
    write_table(
        report_path,
        RECONCILE_COLUMNS,
        (
            [
                c.row_number,
                c.order_id,
                "+".join(c.findings),
                c.payment_id,
                " ".join(c.server_payment_ids),
                c.detail,
            ]
            for c in checks
        ),
    )
    mismatched = sum(1 for c in checks if not c.ok)
    log.info("reconciled", extra={"checked": len(checks), "mismatched": mismatched})
    return ReconcileResult(checked=len(checks), mismatched=mismatched, report=report_path)


async def _audit_online(
    records: list[Record],
    api_config: ApiConfig,
    *,
    bound_to: str | None,
    client: HttpClient | None,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    on_secret: Callable[[str], None],
) -> list[Check]:
    owned = None
    if client is None:
        client = owned = open_client(timeout=30.0, concurrency=2)
    try:
        conn = await connect(
            client, api_config, windows=(), clock=clock, sleep=sleep, on_secret=on_secret
        )
        here = binding(api_config.api_host, conn.environment)
        if bound_to is not None and bound_to != here:
            raise StateError(f"the state file holds the payments of {bound_to}, not {here}")
        return await audit(conn.api, records)
    finally:
        if owned is not None:
            await owned.aclose()
