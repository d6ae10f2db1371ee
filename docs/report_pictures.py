"""Pictures of the XLSX report as LibreOffice prints it: `make report-pictures`.

Runs the sample file against the built-in sandbox, converts the XLSX report to PDF with
LibreOffice, then the first page of each sheet to PNG with pdftoppm (80 dpi):
docs/report-summary.png, docs/report-errors.png and docs/report-rows.png. A sheet's pages
are found by the words only that sheet prints (pdftotext).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "report-pictures"
DOCS = ROOT / "docs"
# Words that only the first page of each sheet prints.
MARKERS = {
    "summary": "Rows by status",
    "errors": "what_to_do",
    "rows": "external_payment_id",
}


def _run(*args: str | Path, cwd: Path = ROOT, ok: tuple[int, ...] = (0,)) -> str:
    command = [str(a) for a in args]  # our own fixed commands
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode not in ok:
        sys.exit(f"{args[0]} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    report = WORK / "report.xlsx"
    paybatch = Path(sys.executable).with_name("paybatch")
    # Exit 1 is expected: the sample's refused rows are there by design.
    _run(paybatch, "run", "sample_data/orders.csv", "--sandbox", "--report", report,
         "--state", WORK / "state.sqlite", "--no-progress", "-q", ok=(0, 1))  # fmt: skip
    _run("libreoffice", "--headless", "--convert-to", "pdf", report.name, cwd=WORK)
    pdf = report.with_suffix(".pdf")
    info = _run("pdfinfo", pdf).splitlines()
    pages = int(next(line for line in info if line.startswith("Pages:")).split()[1])
    print(f"{pdf.relative_to(ROOT)}: {pages} pages")
    for name, marker in MARKERS.items():
        page = next(
            n for n in range(1, pages + 1)
            if marker in _run("pdftotext", "-f", str(n), "-l", str(n), "-layout", pdf, "-")
        )  # fmt: skip
        target = DOCS / f"report-{name}"
        first = ("-f", str(page), "-l", str(page), "-singlefile")
        _run("pdftoppm", "-png", "-r", "80", *first, pdf, target)
        print(f"{target.relative_to(ROOT)}.png: page {page}")


if __name__ == "__main__":
    main()
