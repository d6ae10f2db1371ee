"""`paybatch serve`: the local web page for finance, on 127.0.0.1 until Ctrl-C.

An adapter like the other commands: options become a `Site`, a `WebServer` serves it.
The web package (aiohttp, Jinja2) is imported only when the command runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import tempfile
import threading
import webbrowser
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from batch.errors import SERVE, PaybatchError, exit_codes_help
from batch.logs import configure_logging
from batch.statefile import STATE_VARIABLE, data_dir

if TYPE_CHECKING:
    from batch.web import WebServer

SIGNALS = (signal.SIGINT, signal.SIGTERM)
DEFAULT_MAX_UPLOAD_MB = 50  # batch.web.DEFAULT_MAX_UPLOAD_MB, without importing aiohttp for --help


@click.command(
    epilog=exit_codes_help(SERVE), context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port). The page never listens on other addresses.",
)
@click.option("--no-browser", is_flag=True, help="Print the address; do not open a browser.")
@click.option(
    "--max-upload-mb",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_MAX_UPLOAD_MB,
    show_default=True,
    help="Largest file the page accepts; larger uploads are refused (HTTP 413).",
)
@click.option(
    "--reports",
    "reports_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Folder for the runs' reports (CSV, XLSX, error file).",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=STATE_VARIABLE,
    show_envvar=True,
    help="The runs' state file (default: the one `paybatch run` uses).",
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Rehearse against the built-in sandbox (no credentials); its state is thrown "
    "away when the server stops.",
)
def serve(
    port: int,
    no_browser: bool,
    max_upload_mb: int,
    reports_dir: Path,
    state_path: Path | None,
    sandbox: bool,
) -> None:
    """Open a local web page to check a spreadsheet, run it, watch it and download the report.

    The address carries a random access token (as Jupyter's does); only this machine can
    reach the page. Credentials come from the CL_* environment variables, as for `run`;
    the page never shows or asks for the client secret. Ctrl-C stops the server (and a
    run in progress, as Ctrl-C stops `paybatch run`).
    """
    from batch.config import ApiConfig
    from batch.web import Site, WebServer

    configure_logging(run_id="serve", fmt="text", verbosity=0)
    with contextlib.ExitStack() as stack:
        env: Mapping[str, str] = os.environ
        state_dir = data_dir(os.environ)
        if sandbox:
            from batch.sandbox import SandboxConfig, SandboxServer

            env = stack.enter_context(SandboxServer(SandboxConfig())).env()
            # Sandbox payments must never reach the real state file (see `run --sandbox`).
            state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            state_path = state_dir / "sandbox.sqlite"
        try:
            api_config, problem = ApiConfig.from_env(env), ""
        except PaybatchError as exc:
            api_config, problem = None, str(exc)
        site = Site(
            api_config=api_config,
            credentials_problem=problem,
            state_dir=state_dir,
            state_path=state_path,
            reports_dir=reports_dir,
            max_upload=max_upload_mb * 1024 * 1024,
        )
        server = WebServer(site, port=port)
        try:
            server.start()
        except OSError as exc:
            site.cleanup()
            reason = "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            click.echo(f"paybatch: error: cannot listen on 127.0.0.1:{port}: {reason}", err=True)
            sys.exit(2)
        _serve_until_signal(server, open_browser=not no_browser)


def _serve_until_signal(server: WebServer, *, open_browser: bool) -> None:
    """Wait for SIGINT or SIGTERM, then stop the server (a run in progress stops first)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in SIGNALS}
    try:
        click.echo(f"paybatch serve: open {server.url}", err=True)
        click.echo("paybatch serve: Ctrl-C to stop", err=True)
        if open_browser:
            webbrowser.open(server.url)
        while not stop.wait(0.5):
            pass
        click.echo("paybatch serve: stopping (a run in progress writes its report first)", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
