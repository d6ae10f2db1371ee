"""`python -m batch.sandbox`: serve the sandbox in its own process until SIGTERM/SIGINT.

Once listening it prints one JSON line (base_url, auth_url, mode, pid, env) and flushes,
so a parent process can read it and point a client at the sandbox.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

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
from batch.sandbox.seed import read_seed_orders
from batch.sandbox.server import SandboxServer, serve


def _latency(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return (float(low), float(high or low))


def _limit(text: str) -> Limit:
    try:
        return parse_limit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    """The command line: one flag per SandboxConfig and Faults field."""
    p = argparse.ArgumentParser(prog="python -m batch.sandbox", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--mode", choices=("test", "live"), default="test")
    p.add_argument(
        "--limit",
        type=_limit,
        action="append",
        metavar="N/WINDOW[:SCOPE]",
        help="a rate-limit window such as 100/60s:class or 25/10s:endpoint (repeatable; "
        "default: the mode's Commerce Layer limits)",
    )
    p.add_argument("--no-limits", action="store_true", help="disable the /api/* limits")
    p.add_argument("--token-limit", type=_limit, default=DEFAULT_TOKEN_LIMIT)
    p.add_argument("--no-token-limit", action="store_true")
    p.add_argument("--no-retry-after", action="store_true", help="429s without Retry-After")
    p.add_argument(
        "--count-rejected",
        action="store_true",
        help="log a refused (429) request in every window it was checked against",
    )
    p.add_argument(
        "--foreign-rate",
        type=_limit,
        metavar="N/Ws",
        help="background requests of another integration at that steady rate, counted in "
        "the class windows",
    )
    p.add_argument("--no-ratelimit-headers", action="store_true", help="no X-Ratelimit-*")
    p.add_argument("--token-ttl", type=float, default=7200.0, metavar="SECONDS")
    p.add_argument("--open-orders", action="store_true", help="unknown order ids are pending")
    p.add_argument("--orders", metavar="CSV", help="orders file with id,status columns")
    p.add_argument("--second-source", choices=("repoint", "refuse"), default="repoint")
    p.add_argument("--ignore-filters", action="store_true")
    p.add_argument("--number-filter-unsupported", action="store_true")
    p.add_argument("--seed", type=int, default=None, help="seed for the fault RNG")
    p.add_argument("--client-id", default=SandboxConfig().client_id)
    p.add_argument("--client-secret", default=SandboxConfig().client_secret)
    for name in ("p-5xx", "p-drop-before", "p-drop-after", "p-late", "storm-p"):
        p.add_argument(f"--{name}", type=float, default=0.0, metavar="P")
    for name in ("late-seconds", "storm-every", "storm-seconds"):
        p.add_argument(f"--{name}", type=float, default=0.0, metavar="SECONDS")
    p.add_argument("--latency-ms", type=_latency, default=(0.0, 0.0), metavar="MIN[,MAX]")
    return p


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """Build the SandboxConfig the parsed flags describe."""
    limits: tuple[Limit, ...] | None
    if args.no_limits:
        limits = None
    elif args.limit:
        limits = tuple(args.limit)
    else:
        limits = DEFAULT_LIVE_LIMITS if args.mode == "live" else DEFAULT_TEST_LIMITS
    orders: dict[str, str | OrderSeed] | None = None
    if args.orders:
        with open(args.orders, newline="", encoding="utf-8") as f:
            orders = dict(read_seed_orders(f.read()))
    return SandboxConfig(
        mode=args.mode,
        limits=limits,
        token_limit=None if args.no_token_limit else args.token_limit,
        retry_after=not args.no_retry_after,
        count_rejected=args.count_rejected,
        foreign_rate=(
            None
            if args.foreign_rate is None
            else (args.foreign_rate.limit, args.foreign_rate.seconds)
        ),
        ratelimit_headers=not args.no_ratelimit_headers,
        token_ttl=args.token_ttl,
        open_orders=args.open_orders,
        orders=orders,
        second_source=args.second_source,
        ignore_filters=args.ignore_filters,
        number_filter=not args.number_filter_unsupported,
        seed=args.seed,
        client_id=args.client_id,
        client_secret=args.client_secret,
        faults=Faults(
            p_5xx=args.p_5xx,
            p_drop_before=args.p_drop_before,
            p_drop_after=args.p_drop_after,
            p_late=args.p_late,
            late_seconds=args.late_seconds,
            storm_p=args.storm_p,
            storm_every=args.storm_every,
            storm_seconds=args.storm_seconds,
            latency_ms=args.latency_ms,
        ),
    )


def _announce(server: SandboxServer) -> None:
    print(json.dumps(server.describe()), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, serve until a signal, exit 0."""
    p = parser()
    args = p.parse_args(argv)
    try:
        config = config_from_args(args)
        # Bad seed orders or a busy port surface here, as a usage error rather than a traceback.
        serve(config, host=args.host, port=args.port, on_ready=_announce)
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        p.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
