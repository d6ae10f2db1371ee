"""What the page's server knows: the credentials, their environment, the uploads, the run."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from batch.api import open_client
from batch.config import ApiConfig
from batch.connection import connect
from batch.errors import PaybatchError
from batch.logs import register_secret
from batch.report import ReportPaths, organization
from batch.statefile import locate
from batch.web.checks import Upload
from batch.web.jobs import RunJob
from batch.web.security import Guard

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_MB = 50
TOKEN_TIMEOUT = 30.0


@dataclass(kw_only=True)
class Site:
    """Everything the handlers share; one per server."""

    api_config: ApiConfig | None
    credentials_problem: str = ""  # why there is no api_config (the CLI's message)
    state_dir: Path
    state_path: Path | None = None  # --state / $PAYBATCH_STATE
    reports_dir: Path = Path("reports")
    max_upload: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    upload_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="paybatch-web-")))
    environment: str = "unknown"  # "test" or "live" once a token said so
    uploads: dict[str, Upload] = field(default_factory=dict)
    reports: dict[str, ReportPaths] = field(default_factory=dict)  # by run or check id
    job: RunJob | None = None
    guard: Guard = field(default_factory=Guard)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def organization(self) -> str:
        return organization(self.api_config.api_host) if self.api_config else "(no credentials)"

    def state_file(self) -> Path | None:
        """The state file a run would use, once the environment is known."""
        if self.api_config is None or self.environment == "unknown":
            return None
        return locate(
            api_host=self.api_config.api_host,
            environment=self.environment,
            chosen=self.state_path,
            directory=self.state_dir,
        ).path

    async def learn_environment(self) -> None:
        """Fetch one token: only it says whether the credentials are TEST or LIVE."""
        if self.api_config is None:
            return
        try:
            async with open_client(timeout=TOKEN_TIMEOUT, concurrency=1) as client:
                conn = await connect(
                    client,
                    self.api_config,
                    windows=(),
                    clock=time.monotonic,
                    sleep=asyncio.sleep,
                    on_secret=register_secret,
                )
        except PaybatchError as exc:
            self.credentials_problem = str(exc)
            log.warning("no token at startup: %s", exc)
            return
        self.environment = conn.environment
        self.credentials_problem = ""

    def cleanup(self) -> None:
        shutil.rmtree(self.upload_dir, ignore_errors=True)
