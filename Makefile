# One task runner. Everything installs into .venv from the project's own files.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench install clean report-pictures system-packages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/paybatch run sample_data/orders.csv --sandbox; code=$$?; \
	  if [ $$code -le 1 ]; then echo "demo finished (exit $$code: the sample's refused rows are there by design)"; exit 0; else exit $$code; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict batch

# The browser tests of the web page (tests/test_web_browser.py) drive Debian's chromium
# through chromedriver; they fail, never skip, without it.
system-packages:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  apt-get update && apt-get install -y chromium chromium-driver; fi

pytest: $(STAMP) system-packages
	$(BIN)/pytest -q -p no:cacheprovider

test: system-packages lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/live_rate.py
	$(BIN)/python bench/input_scale.py

# Pictures of the XLSX report as LibreOffice prints it (docs/report-*.png). Not part of
# `make test`: it installs Debian's libreoffice-calc and poppler-utils when they are missing.
report-pictures: $(STAMP)
	@if ! command -v libreoffice >/dev/null || ! command -v pdftoppm >/dev/null; then \
	  apt-get update && apt-get install -y libreoffice-calc poppler-utils; fi
	$(BIN)/python docs/report_pictures.py

clean:
	rm -rf $(VENV) build *.egg-info
