"""A local Commerce Layer sandbox: auth, external payments and orders over real HTTP.

Standalone on purpose (aiohttp only): it serves `paybatch run --sandbox`, rehearsals,
the end-to-end and crash tests and the benchmarks, as strictly as the real API.
"""

from batch.sandbox.config import (
    DEFAULT_LIVE_LIMITS,
    DEFAULT_TEST_LIMITS,
    DEFAULT_TOKEN_LIMIT,
    Faults,
    Limit,
    OrderSeed,
    SandboxConfig,
    parse_limit,
)
from batch.sandbox.server import SandboxServer, serve
from batch.sandbox.store import Order, Payment, RequestRecord, Store

__all__ = [
    "DEFAULT_LIVE_LIMITS",
    "DEFAULT_TEST_LIMITS",
    "DEFAULT_TOKEN_LIMIT",
    "Faults",
    "Limit",
    "Order",
    "OrderSeed",
    "Payment",
    "RequestRecord",
    "SandboxConfig",
    "SandboxServer",
    "Store",
    "parse_limit",
    "serve",
]
