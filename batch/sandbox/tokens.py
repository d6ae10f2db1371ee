"""JWT-shaped access tokens, signed with a per-server key and checked for expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenIssuer:
    """Issues bearer tokens and recognises the ones it issued that have not expired.

    Expiry is kept on the monotonic clock, so sub-second lifetimes work in tests even
    though the JWT `exp` claim has whole-second resolution.
    """

    def __init__(self, *, organization: str, test: bool, ttl: float) -> None:
        self._key = secrets.token_bytes(32)
        self._organization = organization
        self._test = test
        self._ttl = ttl
        self._expiry: dict[str, float] = {}  # access token -> monotonic expiry

    def issue(self, client_id: str, scope: str) -> dict[str, Any]:
        """The body of a successful /oauth/token response."""
        now = time.time()
        jti = secrets.token_hex(16)
        header = {"alg": "HS512", "typ": "JWT"}
        payload = {
            "organization": {"slug": self._organization, "id": "sandboxOrg"},
            "application": {"id": client_id, "kind": "integration", "public": False},
            "scope": scope,
            "test": self._test,
            "iat": int(now),
            "exp": int(now + self._ttl),
            "rand": jti,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
        signature = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha512).digest()
        token = f"{signing_input}.{_b64(signature)}"
        self._expiry[token] = time.monotonic() + self._ttl
        return {
            "access_token": token,
            "token_type": "bearer",
            # A whole number, as the real API sends; never 0 so clients do not spin.
            "expires_in": max(1, int(self._ttl)),
            "scope": scope,
            "created_at": int(now),
        }

    def valid(self, token: str) -> bool:
        """True for a token this server issued that has not expired yet.

        Only issued tokens are known, so a forged or altered one is refused without
        checking its signature again on every request (that was 12% of the server's CPU).
        """
        expiry = self._expiry.get(token)
        return expiry is not None and time.monotonic() < expiry
