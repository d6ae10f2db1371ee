"""The bench scripts are not run by the suite (they take minutes): at least they import.

A helper they share changed once and `bench/live_rate.py` kept importing a function
that no longer existed; nothing noticed until the next measurement.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py"))


def test_there_are_bench_scripts() -> None:
    assert {"throughput", "live_rate", "input_scale"} <= set(SCRIPTS)


@pytest.mark.skipif(sys.platform == "win32", reason="the benches use POSIX resource usage")
@pytest.mark.parametrize("name", SCRIPTS)
def test_a_bench_script_imports(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    module = importlib.import_module(name)
    assert module.__file__ is not None
