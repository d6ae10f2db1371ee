"""`paybatch serve`: a local web page for finance to check, run and download a report.

    site.Site        what the server knows: credentials, environment, uploads, the run
    app.WebServer    the page on 127.0.0.1, in a thread with its own event loop
    security.Guard   access token, Host and Origin checks, CSRF token
    checks           the page's Check: validate, plus the server preflight
    jobs.RunJob      the one run at a time, with its live progress and Stop
    routes           the screens; templates/ holds their HTML (Jinja2)

Nothing here imports click: the command is `batch.cli.serve`.
"""

from batch.web.app import WebServer, build_app
from batch.web.site import DEFAULT_MAX_UPLOAD_MB, Site

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "Site", "WebServer", "build_app"]
