"""Before the first POST against a live organization: how many payments, and may we?

Confirm = (rows to create, organization) -> bool      the CLI asks on a terminal
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from batch.inputs import InputFile
from batch.journal import AsyncJournal, Journal, RowState

Confirm = Callable[[int, str], bool]
CHUNK = 500


async def rows_to_create(input_file: InputFile, journal: AsyncJournal) -> int:
    """The valid rows of the file whose order the state file does not record as paid."""
    count = 0
    chunk: list[str] = []
    for row in input_file.rows():
        if row.problem is None:
            chunk.append(row.order_id)
        if len(chunk) == CHUNK:
            count += await _unpaid(journal, chunk)
            chunk = []
    return count + await _unpaid(journal, chunk)


async def _unpaid(journal: AsyncJournal, order_ids: list[str]) -> int:
    if not order_ids:
        return 0
    records = await journal.read(partial(Journal.get_many, order_ids=order_ids))
    return sum(1 for o in order_ids if o not in records or records[o].state is not RowState.CREATED)
