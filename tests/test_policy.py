"""The policy's functions: which verdict row an order falls in, 409s, and Retry-After.

The action table itself is exercised row by row through the real runner in
test_runner_outcomes.py; these tests cover the decisions that are code, not a constant.
"""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from batch.policy import (
    RETRY_AFTER_CAP,
    VERDICTS,
    Finding,
    OrderView,
    Outcome,
    Source,
    finding_for,
    outcome_of_status,
    retry_after_seconds,
)
from batch.rows import token_hash

MINE = token_hash("tok_mine")
OTHER = token_hash("tok_other")
EP = "external_payments"


def view(**kw: object) -> OrderView:
    base: dict[str, object] = {
        "order_id": "ord1",
        "found": True,
        "status": "pending",
        "external_gateway": True,
    }
    base.update(kw)
    return OrderView(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (view(), Finding.NOTHING),
        (view(active=Source(EP, "p1", MINE), payments=(Source(EP, "p1", MINE),)), Finding.OURS),
        (
            view(active=Source(EP, "p2", OTHER), payments=(Source(EP, "p1", MINE),)),
            Finding.REPLACED,
        ),
        (view(payments=(Source(EP, "p1", MINE),)), Finding.REPLACED),  # no active source
        (view(active=Source("stripe_payments", "card1")), Finding.OTHER_SOURCE),
        (
            view(active=Source(EP, "p2", OTHER), payments=(Source(EP, "p2", OTHER),)),
            Finding.OTHER_SOURCE,
        ),
        (view(payments=(Source(EP, "p2", OTHER),)), Finding.OTHER_SOURCE),  # an orphan
        (
            view(
                active=Source(EP, "p1", MINE),
                payments=(Source(EP, "p1", MINE), Source(EP, "p3", MINE)),
            ),
            Finding.EXTRA,
        ),
        (view(found=False), Finding.NOT_FOUND),
        (view(status="placed"), Finding.NOT_PENDING),
        (view(status="draft"), Finding.NOT_PENDING),
        (view(external_gateway=False), Finding.NO_METHOD),
        # a paid order that was placed since is still ours, not "not pending"
        (
            view(
                status="placed", active=Source(EP, "p1", MINE), payments=(Source(EP, "p1", MINE),)
            ),
            Finding.OURS,
        ),
    ],
)
def test_finding_for_each_verdict_row(order: OrderView, expected: Finding) -> None:
    finding, detail = finding_for(order, MINE)
    assert finding is expected
    assert VERDICTS[finding].send is (expected is Finding.NOTHING)
    if VERDICTS[finding].code:
        assert detail  # every refusal says what was seen


def test_other_source_names_type_and_id() -> None:
    _, detail = finding_for(view(active=Source("stripe_payments", "card_9")), MINE)
    assert "stripe_payments card_9" in detail


def test_extra_payments_lists_them() -> None:
    two = (Source(EP, "p1", MINE), Source(EP, "p7", OTHER))
    _, detail = finding_for(view(payments=two), MINE)
    assert "p1" in detail
    assert "p7" in detail


def test_not_pending_names_the_status() -> None:
    _, detail = finding_for(view(status="cancelled"), MINE)
    assert "cancelled" in detail


@pytest.mark.parametrize(
    ("code", "pointer", "expected"),
    [
        ("VALIDATION_ERROR", "", Outcome.UNKNOWN),  # "not unique... safely ignore"
        ("", "", Outcome.UNKNOWN),
        ("TYPE_MISMATCH", "", Outcome.PERMANENT),
        ("CONFLICT", "/data/type", Outcome.PERMANENT),
    ],
)
def test_409_is_unknown_unless_a_type_mismatch(code: str, pointer: str, expected: Outcome) -> None:
    assert outcome_of_status(409, has_id=False, code=code, pointer=pointer) is expected


def test_401_invalid_token_is_told_apart_from_other_401s() -> None:
    assert outcome_of_status(401, has_id=False, code="INVALID_TOKEN") is Outcome.TOKEN_REJECTED
    assert outcome_of_status(401, has_id=False, code="UNAUTHORIZED") is Outcome.CREDENTIAL


def test_retry_after_in_seconds_date_capped_and_garbage() -> None:
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now=now) == 7.0
    assert retry_after_seconds("1.5", now=now) == 1.5
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(date, now=now) == pytest.approx(30.0)
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(past, now=now) == 0.0
    assert retry_after_seconds("86400", now=now) == RETRY_AFTER_CAP
    assert retry_after_seconds("-3", now=now) == 0.0
    for bad in (None, "", "soon", "nan"):
        assert retry_after_seconds(bad, now=now) is None


def test_readme_shows_the_verdict_table() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for finding, verdict in VERDICTS.items():
        status = f"`{verdict.status}`" if verdict.status else "–"
        code = f"`{verdict.code}`" if verdict.code else "–"
        sent = "yes" if verdict.send else "no"
        line = f"| {finding.value} | {status} | {code} | {verdict.exit_effect or '–'} | {sent} |"
        assert line in readme, f"README lacks the verdict row: {line}"
