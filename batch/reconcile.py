"""`paybatch reconcile`: what is in effect on the server, order by order, by the verdict table.

    reconcile_state(state)   every order the state file records as created
    reconcile_input(INPUT)   every valid row of a file, with no state file at all

Both read the server in batches of 25 orders (the preflight's two lookups) and apply
`policy.finding_for` to each order with the row's token: the active payment source and
the order's status count, not merely that some payment exists.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from batch.api import LOOKUP_BATCH, CommerceLayer, HttpClient, open_client
from batch.config import ApiConfig
from batch.connection import connect
from batch.errors import StateError
from batch.inputs import Match, open_input
from batch.journal import Journal, RowState, binding
from batch.policy import Finding, OrderView, finding_for, payment_of
from batch.report import write_table
from batch.rows import token_hash
from batch.statefile import data_dir, locate

log = logging.getLogger(__name__)

# What each verdict row means for an audit, in a word finance can filter on.
RESULTS: dict[Finding, str] = {
    Finding.OURS: "paid",
    Finding.NOTHING: "not_paid",
    Finding.NOT_PENDING: "not_paid",
    Finding.NO_METHOD: "not_paid",
    Finding.OTHER_SOURCE: "paid_with_another_source",
    Finding.REPLACED: "source_replaced",
    Finding.EXTRA: "more_than_one_payment",
    Finding.NOT_FOUND: "order_not_found",
    Finding.TOKEN_CHANGED: "paid_with_another_token",
}
RECONCILE_COLUMNS = (
    "row",
    "order_id",
    "result",
    "external_payment_id",
    "server_payment_ids",
    "order_status",
    "active_source",
    "detail",
)


@dataclass(frozen=True, slots=True)
class Check:
    row_number: int
    order_id: str
    token_sha256: str
    payment_id: str = ""  # what the state file recorded, when it did
    number: str = ""  # --match number: the order is found by its number


@dataclass(frozen=True, kw_only=True)
class ReconcileResult:
    checked: int
    mismatched: int
    report: Path

    @property
    def exit_code(self) -> int:
        return 0 if self.mismatched == 0 else 1


def audit_line(check: Check, view: OrderView) -> list[str | int]:
    """One line of the findings: the verdict, and what was seen."""
    finding, detail = finding_for(view, check.token_sha256)
    result = RESULTS[finding]
    ours = payment_of(view, check.token_sha256)
    if finding is Finding.OTHER_SOURCE and _another_token(view):
        result = "paid_with_another_token"
    if finding is Finding.OURS and check.payment_id and ours and ours.id != check.payment_id:
        result, detail = (
            "different_payment",
            (f"the state file recorded {check.payment_id}, the order's payment is {ours.id}"),
        )
    if not check.payment_id and finding is Finding.NOT_PENDING:
        detail = f"no payment; {detail}"
    active = view.active
    return [
        check.row_number,
        check.order_id,
        result,
        check.payment_id or (ours.id if ours else ""),
        " ".join(p.id for p in view.payments),
        view.status,
        f"{active.type} {active.id}" if active else "",
        detail,
    ]


def _with_id(check: Check, view: OrderView) -> Check:
    return replace(check, order_id=view.order_id or check.number)


def _another_token(view: OrderView) -> bool:
    active = view.active
    return (active is not None and active.type == "external_payments") or (
        active is None and bool(view.payments)
    )


async def audit(api: CommerceLayer, checks: Sequence[Check]) -> list[list[str | int]]:
    lines: list[list[str | int]] = []
    for start in range(0, len(checks), LOOKUP_BATCH):
        chunk = checks[start : start + LOOKUP_BATCH]
        if chunk[0].number:
            views = await api.order_views(numbers=list(dict.fromkeys(c.number for c in chunk)))
            lines += [audit_line(_with_id(c, views[c.number]), views[c.number]) for c in chunk]
            continue
        views = await api.order_views(order_ids=list(dict.fromkeys(c.order_id for c in chunk)))
        lines += [audit_line(c, views[c.order_id]) for c in chunk]
    return lines


def reconcile_state(
    state_path: Path | None,
    api_config: ApiConfig,
    *,
    report_path: Path,
    state_dir: Path | None = None,
    client: HttpClient | None = None,
    on_secret: Callable[[str], None] = lambda _secret: None,
) -> ReconcileResult:
    """Audit every order the state file records as created.

    Without `state_path`, the state file is the run's default for the credentials'
    organization and environment (see `statefile.locate`).
    """
    if state_path is not None and not state_path.exists():
        raise StateError(f"{state_path}: no such state file")

    def load(environment: str) -> tuple[list[Check], str | None]:
        path = (
            state_path
            or locate(
                api_host=api_config.api_host,
                environment=environment,
                chosen=None,
                directory=state_dir or data_dir(),
            ).path
        )
        if not path.exists():
            raise StateError(f"{path}: no such state file")
        journal = Journal.open(path)
        try:
            records = journal.records([RowState.CREATED])
            bound_to = journal.bound_to()
        finally:
            journal.close()
        checks = [Check(r.row_number, r.order_id, r.token_sha256, r.payment_id) for r in records]
        return checks, bound_to

    return _reconcile(load, api_config, report_path=report_path, client=client, on_secret=on_secret)


def reconcile_input(
    input_path: Path,
    api_config: ApiConfig,
    *,
    sheet: str | None = None,
    columns: dict[str, str] | None = None,
    match: Match = "id",
    report_path: Path,
    client: HttpClient | None = None,
    on_secret: Callable[[str], None] = lambda _secret: None,
) -> ReconcileResult:
    """Audit every valid row of a file against the server; no state file is read."""
    source = open_input(input_path, sheet=sheet, columns=columns, match=match)
    checks = [
        Check(row.row, row.order_id, token_hash(row.payment_source_token), number=row.order_number)
        for row in source.rows()
        if row.problem is None
    ]
    return _reconcile(
        lambda _environment: (checks, None),
        api_config,
        report_path=report_path,
        client=client,
        on_secret=on_secret,
    )


def _reconcile(
    load: Callable[[str], tuple[list[Check], str | None]],
    api_config: ApiConfig,
    *,
    report_path: Path,
    client: HttpClient | None,
    on_secret: Callable[[str], None],
) -> ReconcileResult:
    on_secret(api_config.client_secret.reveal())

    async def online() -> list[list[str | int]]:
        owned = client is None
        http = open_client(timeout=30.0, concurrency=2) if client is None else client
        try:
            conn = await connect(
                http,
                api_config,
                windows=(),
                clock=time.monotonic,
                sleep=asyncio.sleep,
                on_secret=on_secret,
            )
            checks, bound_to = load(conn.environment)
            here = binding(api_config.api_host, conn.environment)
            if bound_to is not None and bound_to != here:
                raise StateError(f"the state file holds the payments of {bound_to}, not {here}")
            return await audit(conn.api, checks)
        finally:
            if owned:
                await http.aclose()

    lines = asyncio.run(online())
    write_table(report_path, RECONCILE_COLUMNS, lines)
    mismatched = sum(1 for line in lines if line[2] != "paid")
    log.info("reconciled", extra={"checked": len(lines), "mismatched": mismatched})
    return ReconcileResult(checked=len(lines), mismatched=mismatched, report=report_path)
