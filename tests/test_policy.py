"""Each row of the outcome table, for status codes and transport failures."""

import httpx
import pytest

from batch.policy import Outcome, outcome_of_error, outcome_of_status


@pytest.mark.parametrize(
    ("status", "has_id", "expected"),
    [
        (201, True, Outcome.CREATED),
        (200, True, Outcome.CREATED),
        (200, False, Outcome.UNKNOWN),
        (201, False, Outcome.UNKNOWN),
        (429, False, Outcome.THROTTLED),
        (408, False, Outcome.UNKNOWN),
        (423, False, Outcome.REFUSED),
        (400, False, Outcome.PERMANENT),
        (401, False, Outcome.PERMANENT),
        (403, False, Outcome.PERMANENT),
        (404, False, Outcome.PERMANENT),
        (409, False, Outcome.PERMANENT),
        (415, False, Outcome.PERMANENT),
        (422, False, Outcome.PERMANENT),
        (500, False, Outcome.UNKNOWN),
        (502, False, Outcome.UNKNOWN),
        (503, False, Outcome.UNKNOWN),
        (504, False, Outcome.UNKNOWN),
        (302, False, Outcome.UNKNOWN),
    ],
)
def test_status_outcomes(status: int, has_id: bool, expected: Outcome) -> None:
    assert outcome_of_status(status, has_id=has_id) is expected


REQUEST = httpx.Request("POST", "https://example.invalid/api/external_payments")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ConnectError("refused", request=REQUEST), Outcome.NOT_SENT),
        (httpx.ConnectTimeout("slow", request=REQUEST), Outcome.NOT_SENT),
        (httpx.PoolTimeout("pool", request=REQUEST), Outcome.NOT_SENT),
        (httpx.ReadTimeout("lost", request=REQUEST), Outcome.UNKNOWN),
        (httpx.WriteTimeout("half", request=REQUEST), Outcome.UNKNOWN),
        (httpx.RemoteProtocolError("closed", request=REQUEST), Outcome.UNKNOWN),
        (httpx.ReadError("reset", request=REQUEST), Outcome.UNKNOWN),
        (httpx.WriteError("reset", request=REQUEST), Outcome.UNKNOWN),
        (httpx.DecodingError("bad gzip", request=REQUEST), Outcome.UNKNOWN),
        (httpx.LocalProtocolError("line break", request=REQUEST), Outcome.PERMANENT),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), Outcome.PERMANENT),
        (RuntimeError("strange"), Outcome.UNKNOWN),
    ],
)
def test_transport_outcomes(error: Exception, expected: Outcome) -> None:
    assert outcome_of_error(error) is expected
