"""Messages for people: counts as words in text logs, right plurals on the summary line."""

from __future__ import annotations

import logging
from pathlib import Path

from click.testing import CliRunner

from batch.cli import main
from batch.logs import TextFormatter
from batch.rows import RowStatus


def test_text_log_counts_are_words_not_a_dict_repr() -> None:
    record = logging.LogRecord("batch.runner", logging.INFO, __file__, 1, "run finished", (), None)
    record.counts = {RowStatus.CREATED: 277, RowStatus.NOT_ATTEMPTED: 1}
    record.exit_code = 1
    line = TextFormatter().format(record)
    assert line.endswith("run finished counts=(277 created, 1 not attempted) exit_code=1")
    assert "RowStatus" not in line


def test_one_row_is_one_row(tmp_path: Path) -> None:
    source = tmp_path / "one.csv"
    source.write_text("order_id,payment_source_token\nORD1,tok_one_1111\n", "utf-8")
    args = ["validate", str(source), "--report", str(tmp_path / "r.csv")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "1 row: 1 valid" in result.stderr
    assert "1 rows" not in result.stderr
