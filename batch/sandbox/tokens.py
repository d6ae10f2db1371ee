"""JWT-shaped access tokens, signed with a per-server key and checked for expiry."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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
        self._expiry: dict[str, float] = {}  # jti -> monotonic expiry

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
        self._expiry[jti] = time.monotonic() + self._ttl
        return {
            "access_token": f"{signing_input}.{_b64(signature)}",
            "token_type": "bearer",
            # A whole number, as the real API sends; never 0 so clients do not spin.
            "expires_in": max(1, int(self._ttl)),
            "scope": scope,
            "created_at": int(now),
        }

    def valid(self, token: str) -> bool:
        """True for a token this server signed and that has not expired yet."""
        parts = token.split(".")
        if len(parts) != 3:
            return False
        signing_input = f"{parts[0]}.{parts[1]}"
        try:
            expected = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha512).digest()
            if not hmac.compare_digest(expected, _unb64(parts[2])):
                return False
            payload = json.loads(_unb64(parts[1]))
        except (binascii.Error, ValueError, UnicodeError):
            return False
        expiry = self._expiry.get(str(payload.get("rand")))
        return expiry is not None and time.monotonic() < expiry
