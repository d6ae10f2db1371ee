"""`python -m batch.sandbox`: `paybatch sandbox --json`, for a parent process.

It prints one JSON line once listening (base_url, auth_url, mode, pid, env) and serves
until SIGTERM or SIGINT. An entry point, like batch/__main__.py: the one place outside
the click layer that imports it.
"""

import sys

from batch.cli.sandbox import sandbox

sandbox(["--json", *sys.argv[1:]], prog_name="python -m batch.sandbox")
