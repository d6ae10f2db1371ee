"""`paybatch sandbox`: serve the built-in Commerce Layer simulator until Ctrl-C.

An adapter like the other commands: options become a SandboxConfig, `serve()` runs it.
The sandbox package (and aiohttp) is imported only when the command runs.
"""

from __future__ import annotations

import errno
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from batch.errors import SANDBOX, exit_codes_help

if TYPE_CHECKING:
    from batch.sandbox import Limit, SandboxConfig, SandboxServer

EPILOG = """\b
Once listening, it prints on stdout the lines that point paybatch at it:
  export CL_BASE_URL=http://127.0.0.1:PORT
  export CL_AUTH_URL=http://127.0.0.1:PORT/oauth/token
  export CL_CLIENT_ID=sandbox-client
  export CL_CLIENT_SECRET=sandbox-secret
Paste them into another shell, then run paybatch there. With --json it prints
one JSON line instead: base_url, auth_url, mode, pid and env (the same four).

""" + exit_codes_help(SANDBOX)


def _limits(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Parse N/Ws[:SCOPE] values (one, or a tuple for a repeatable option)."""
    from batch.sandbox import parse_limit

    try:
        if isinstance(value, tuple):
            return tuple(parse_limit(text) for text in value)
        return None if value is None else parse_limit(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _latency(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    low, _, high = value.partition(",")
    try:
        return (float(low), float(high or low))
    except ValueError:
        raise click.BadParameter(f"not milliseconds: {value!r} (expected e.g. 40,160)") from None


PROBABILITY = click.FloatRange(0.0, 1.0)
SECONDS = click.FloatRange(min=0.0)


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port; 0 picks a free one.")
@click.option(
    "--mode",
    type=click.Choice(["test", "live"]),
    default="test",
    show_default=True,
    help="The environment its tokens and resources claim; picks the default limits.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line, not export lines.")
# -- rate limits
@click.option(
    "--limit",
    "limits",
    multiple=True,
    callback=_limits,
    metavar="N/Ws[:SCOPE]",
    help="A window on /api/*, e.g. 100/60s:class (all endpoints together) or "
    "25/10s:endpoint (each endpoint apart). Repeatable. Default: Commerce Layer's "
    "limits for --mode (test: 100/60s:class and 25/10s:endpoint).",
)
@click.option("--no-limits", is_flag=True, help="No limits on /api/* at all.")
@click.option(
    "--token-limit",
    callback=_limits,
    metavar="N/Ws",
    default="30/60s",
    show_default=True,
    help="The window of POST /oauth/token.",
)
@click.option("--no-token-limit", is_flag=True, help="No limit on /oauth/token.")
@click.option("--no-retry-after", is_flag=True, help="Send 429s without a Retry-After header.")
@click.option(
    "--count-rejected",
    is_flag=True,
    help="Count a refused (429) request in every window it was checked against, so "
    "requests that keep knocking keep the window full (unconfirmed for the real API).",
)
@click.option(
    "--foreign-rate",
    callback=_limits,
    metavar="N/Ws",
    help="Another integration on the same IP: N requests every W seconds, steadily, "
    "counted in the class windows (and in X-Ratelimit-Remaining), not in the request log.",
)
@click.option("--no-ratelimit-headers", is_flag=True, help="Send no X-Ratelimit-* headers.")
# -- orders and payments
@click.option(
    "--open-orders",
    is_flag=True,
    help="Any order ID (or number, when looked up) is a pending order with an external "
    "payment method: rehearse with your own file.",
)
@click.option(
    "--orders",
    "orders_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="CSV",
    help="Seed orders from a CSV with id,status and optionally number, payment_method "
    "(external, stripe, none) and payment_source (card, external:TOKEN, joined by |) "
    "instead of the built-in ones.",
)
@click.option(
    "--second-source",
    type=click.Choice(["repoint", "refuse"]),
    default="repoint",
    show_default=True,
    help="A create on an order that already has a payment source: repoint makes the new "
    "payment the active source and orphans the old one; refuse answers 422.",
)
@click.option(
    "--ignore-filters",
    is_flag=True,
    help="Answer filtered lists as if unfiltered: 200 with unrelated records.",
)
@click.option(
    "--number-filter-unsupported",
    is_flag=True,
    help="Answer 400 to filters on the order number (number_eq, number_in).",
)
@click.option(
    "--token-ttl",
    type=click.FloatRange(min=0.001),
    default=7200.0,
    show_default=True,
    metavar="SECONDS",
    help="Lifetime of the access tokens it issues.",
)
@click.option("--client-id", default="sandbox-client", show_default=True, help="Accepted ID.")
@click.option("--client-secret", default="sandbox-secret", help="Accepted secret.")
# -- faults on POST /api/external_payments
@click.option(
    "--p-5xx",
    type=PROBABILITY,
    default=0.0,
    metavar="P",
    help="Chance a create answers 500 or 503 with an HTML body; nothing is created.",
)
@click.option(
    "--p-drop-before",
    type=PROBABILITY,
    default=0.0,
    metavar="P",
    help="Chance a create's connection is cut before the payment is recorded.",
)
@click.option(
    "--p-drop-after",
    type=PROBABILITY,
    default=0.0,
    metavar="P",
    help="Chance a create's connection is cut after the payment is recorded (a lost answer).",
)
@click.option(
    "--p-late",
    type=PROBABILITY,
    default=0.0,
    metavar="P",
    help="Chance a create answers --late-seconds after recording the payment.",
)
@click.option(
    "--late-seconds", type=SECONDS, default=0.0, metavar="S", help="How late --p-late answers."
)
@click.option(
    "--storm-p",
    type=PROBABILITY,
    default=0.0,
    metavar="P",
    help="Chance a create gets a 429 that no window counts (a one-request storm).",
)
@click.option(
    "--storm-every",
    type=SECONDS,
    default=0.0,
    metavar="S",
    help="Every S seconds, creates get 429s (not counted) for the last --storm-seconds.",
)
@click.option(
    "--storm-seconds",
    type=SECONDS,
    default=0.0,
    metavar="S",
    help="How long each --storm-every storm lasts.",
)
@click.option(
    "--latency-ms",
    default="0",
    callback=_latency,
    metavar="MIN[,MAX]",
    help="Latency added to every /api/* request, uniform between MIN and MAX ms.",
)
@click.option("--seed", type=int, help="Seed for the fault draws: the same faults every time.")
def sandbox(host: str, port: int, as_json: bool, orders_path: Path | None, **options: Any) -> None:
    """Serve the built-in Commerce Layer sandbox for rehearsals; print the env vars to use."""
    config = _config(orders_path, options)
    from batch.sandbox import serve

    try:
        serve(config, host=host, port=port, on_ready=_json_line if as_json else _export_lines)
    except OSError as exc:
        _fail(_listen_error(exc, host, port))


def _config(orders_path: Path | None, options: dict[str, Any]) -> SandboxConfig:
    """The SandboxConfig the options describe; a bad value or file is one line, exit 2."""
    from batch.sandbox import DEFAULT_LIVE_LIMITS, DEFAULT_TEST_LIMITS, Faults, SandboxConfig
    from batch.sandbox.seed import read_seed_orders

    limits: tuple[Limit, ...] | None = tuple(options["limits"])
    if options["no_limits"]:
        limits = None
    elif not limits:
        limits = DEFAULT_LIVE_LIMITS if options["mode"] == "live" else DEFAULT_TEST_LIMITS
    foreign: Limit | None = options["foreign_rate"]
    try:
        orders = None
        if orders_path is not None:
            orders = dict(read_seed_orders(orders_path.read_text("utf-8")))
        return SandboxConfig(
            mode=options["mode"],
            limits=limits,
            token_limit=None if options["no_token_limit"] else options["token_limit"],
            retry_after=not options["no_retry_after"],
            count_rejected=options["count_rejected"],
            foreign_rate=None if foreign is None else (foreign.limit, foreign.seconds),
            ratelimit_headers=not options["no_ratelimit_headers"],
            token_ttl=options["token_ttl"],
            open_orders=options["open_orders"],
            orders=orders,
            second_source=options["second_source"],
            ignore_filters=options["ignore_filters"],
            number_filter=not options["number_filter_unsupported"],
            seed=options["seed"],
            client_id=options["client_id"],
            client_secret=options["client_secret"],
            faults=Faults(
                **{
                    name: options[name]
                    for name in (
                        "p_5xx",
                        "p_drop_before",
                        "p_drop_after",
                        "p_late",
                        "late_seconds",
                        "storm_p",
                        "storm_every",
                        "storm_seconds",
                        "latency_ms",
                    )
                }
            ),
        )
    except OSError as exc:
        _fail(f"cannot read --orders {orders_path}: {exc.strerror or exc}")
    except (ValueError, UnicodeDecodeError) as exc:
        _fail(str(exc))


def _listen_error(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use; choose another --port (0 picks one)"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _fail(message: str) -> NoReturn:
    click.echo(f"paybatch sandbox: error: {message}", err=True)
    sys.exit(2)


def _export_lines(server: SandboxServer) -> None:
    for name, value in server.env().items():
        click.echo(f"export {name}={shlex.quote(value)}")
    click.echo(f"# sandbox serving on {server.base_url}; Ctrl-C to stop", err=True)


def _json_line(server: SandboxServer) -> None:
    click.echo(json.dumps(server.describe()))
    sys.stdout.flush()
