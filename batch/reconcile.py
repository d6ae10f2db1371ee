"""`paybatch reconcile`: audit every payment the state file says we created against the server.

For each order recorded as created, the server must have that external payment, on that
order, carrying that row's token (compared by SHA-256), and no other payment for the order.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from batch.api import LOOKUP_BATCH, CommerceLayer, FoundPayment
from batch.journal import Record

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
