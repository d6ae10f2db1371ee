"""The page's screens and endpoints; each handler reads the Site, calls one plain function.

GET  /                    upload a file; the run in progress; past runs
POST /upload              store the file (capped), check it, show /check/ID
GET  /check/ID            counts, refused rows, the sheet/column form, the Run button
POST /check/ID            check again with the chosen sheet and column mapping
POST /run/ID              start the run (LIVE, or an unknown environment, asks once more)
GET  /run                 the run's live progress, then its downloads
GET  /status              the run's progress as JSON (polled by the page)
POST /stop                the Stop button: like a first Ctrl-C
GET  /download/KEY/KIND   csv, xlsx or errors of a report the server knows
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import BodyPartReader, web

from batch.report import ReportPaths, default_report_path, report_files
from batch.statedb import past_runs
from batch.web.checks import Upload, check_upload, run_options
from batch.web.jobs import RunJob, downloads
from batch.web.security import CSRF_FIELD
from batch.web.site import Site

log = logging.getLogger(__name__)

SITE = web.AppKey("site", Site)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
KINDS = ("csv", "xlsx", "errors")
CHUNK = 256 * 1024


def render(request: web.Request, template: str, *, code: int = 200, **context: Any) -> web.Response:
    site = request.app[SITE]
    page = request.app[TEMPLATES].get_template(template)
    html = page.render(site=site, csrf=site.guard.csrf_token, csrf_field=CSRF_FIELD, **context)
    return web.Response(text=html, status=code, content_type="text/html")


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def problem(request: web.Request, message: str, *, status: int) -> web.Response:
    return render(request, "problem.html", code=status, message=message)


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """A bug is logged with its traceback and shown as one sentence, never as a traceback."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("the web page failed on %s %s", request.method, request.path)
        job = request.app[SITE].job
        report = job.options.report_path if job is not None else None
        where = f"the report is at {report}" if report and report.exists() else "see the log"
        return problem(request, f"something went wrong; {where}", status=500)
    return response


def _upload(request: web.Request) -> Upload:
    upload = request.app[SITE].uploads.get(request.match_info["id"])
    if upload is None:
        raise web.HTTPNotFound(text="no such file on this page; upload it again")
    return upload


def _safe_name(filename: str | None) -> str:
    """The uploaded file's own name (reports are named after it), without any path."""
    name = re.sub(r"[^\w.\- ]", "_", Path(filename or "").name).strip(" .")
    return name[-120:] or "upload.csv"


def _too_large(request: web.Request) -> web.Response:
    megabytes = request.app[SITE].max_upload / (1024 * 1024)
    return problem(
        request,
        f"the file is larger than the upload limit of {megabytes:g} MB "
        "(start paybatch serve with a larger --max-upload-mb, or run it with paybatch run)",
        status=413,
    )


async def _check(site: Site, upload: Upload) -> None:
    upload.check = await asyncio.to_thread(
        check_upload,
        upload,
        site.api_config,
        state_dir=site.state_dir,
        state_path=site.state_path,
    )
    if upload.check.paths is not None:
        site.reports[f"check-{upload.id}"] = upload.check.paths


async def home(request: web.Request) -> web.Response:
    return render(request, "home.html", runs=_past_runs(request.app[SITE]))


async def upload_file(request: web.Request) -> web.Response:
    site = request.app[SITE]
    if (request.content_length or 0) > site.max_upload + CHUNK:
        return _too_large(request)
    reader = await request.multipart()
    csrf = await reader.next()
    given = await csrf.text() if isinstance(csrf, BodyPartReader) else ""
    if not isinstance(csrf, BodyPartReader) or csrf.name != CSRF_FIELD:
        return web.Response(status=403, text="403 forbidden: the form has no CSRF token\n")
    if not secrets.compare_digest(given.encode(), site.guard.csrf_token.encode()):
        return web.Response(status=403, text="403 forbidden: the form is stale or forged\n")
    part = await reader.next()
    if not isinstance(part, BodyPartReader) or part.name != "file" or not part.filename:
        return problem(request, "choose a file first", status=400)
    upload_id = secrets.token_hex(8)
    folder = site.upload_dir / upload_id
    folder.mkdir(mode=0o700)
    path = folder / _safe_name(part.filename)
    size = 0
    with path.open("wb") as f:
        while chunk := await part.read_chunk(CHUNK):
            size += len(chunk)
            if size > site.max_upload:
                f.close()
                path.unlink()
                return _too_large(request)
            f.write(chunk)
    upload = site.uploads[upload_id] = Upload(id=upload_id, path=path)
    await _check(site, upload)
    return see_other(f"/check/{upload_id}")


async def show_check(request: web.Request) -> web.Response:
    upload = _upload(request)
    key = f"check-{upload.id}"
    check = upload.check
    links = downloads(key, check.paths if check else None)
    return render(request, "check.html", upload=upload, check=check, links=links)


async def recheck(request: web.Request) -> web.Response:
    upload = _upload(request)
    form = await request.post()
    sheet = str(form.get("sheet", "")).strip()
    upload.sheet = sheet or upload.sheet
    for name, value in form.items():
        if name.startswith("column_") and str(value).strip():
            upload.columns[name.removeprefix("column_")] = str(value).strip()
    await _check(request.app[SITE], upload)
    return see_other(f"/check/{upload.id}")


async def start_run(request: web.Request) -> web.Response:
    site = request.app[SITE]
    upload = _upload(request)
    if site.api_config is None:
        return problem(request, f"paybatch: error: {site.credentials_problem}", status=400)
    form = await request.post()
    with site.lock:
        if site.job is not None and site.job.running:
            return see_other("/run")  # one run at a time: every tab sees the same one
        if site.environment != "test" and form.get("confirm_live") != "yes":
            return render(request, "confirm.html", upload=upload, check=upload.check)
        report = default_report_path(upload.path, datetime.now(UTC), directory=site.reports_dir)
        options = run_options(
            upload, report=report, state_dir=site.state_dir, state_path=site.state_path
        )
        site.job = RunJob(
            options, site.api_config, input_name=upload.path.name, upload_id=upload.id
        )
        site.job.start()
    log.info("run started from the page", extra={"input": upload.path.name})
    return see_other("/run")


async def show_run(request: web.Request) -> web.Response:
    job = request.app[SITE].job
    if job is None:
        return see_other("/")
    return render(request, "run.html", job=job, status=job.status())


async def status(request: web.Request) -> web.Response:
    job = request.app[SITE].job
    return web.json_response(job.status() if job else {"running": False, "phase": "idle"})


async def stop(request: web.Request) -> web.Response:
    job = request.app[SITE].job
    if job is not None and job.running:
        job.stop()
        log.warning("stop asked from the page: no new sends")
    return see_other("/run")


def _report_of(site: Site, key: str) -> ReportPaths | None:
    job = site.job
    if job is not None and job.run_id == key and job.outcome and job.outcome.paths:
        site.reports[key] = job.outcome.paths
    return site.reports.get(key)


async def download(request: web.Request) -> web.StreamResponse:
    kind = request.match_info["kind"]
    paths = _report_of(request.app[SITE], request.match_info["key"])
    if paths is None or kind not in KINDS:
        raise web.HTTPNotFound(text="no such report on this page")
    path = {"csv": paths.csv, "xlsx": paths.xlsx, "errors": paths.errors}[kind]
    if path is None or not path.is_file():
        raise web.HTTPNotFound(text="that report file is gone")
    return web.FileResponse(
        path, headers={"Content-Disposition": f'attachment; filename="{path.name}"'}
    )


def _past_runs(site: Site) -> list[dict[str, Any]]:
    """The state file's runs, with report links where the report is in the reports folder.

    The runs table holds no report paths: a run's report is found by the default name the
    run gave it (`<input stem>-<start time>.csv` in the reports folder), when it is there.
    """
    state = site.state_file()
    if state is None:
        return []
    shown = []
    for run in past_runs(state):
        name = Path(run.input_path).name
        stamp = run.started_at.replace("-", "").replace(":", "")
        if _report_of(site, run.run_id) is None:
            guess = report_files(site.reports_dir / f"{Path(name).stem}-{stamp}.csv", xlsx=True)
            if guess.csv.is_file():
                site.reports[run.run_id] = guess
        shown.append(
            {
                "run": run,
                "name": name,
                "links": downloads(run.run_id, site.reports.get(run.run_id)),
            }
        )
    return shown


def add_routes(app: web.Application) -> None:
    app.add_routes(
        [
            web.get("/", home),
            web.post("/upload", upload_file),
            web.get("/check/{id}", show_check),
            web.post("/check/{id}", recheck),
            web.post("/run/{id}", start_run),
            web.get("/run", show_run),
            web.get("/status", status),
            web.post("/stop", stop),
            web.get("/download/{key}/{kind}", download),
        ]
    )
