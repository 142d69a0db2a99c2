"""Streaming a CSV file for the bulk commands: each record with its line number, in batches.

A record the csv module cannot read (e.g. a field past its size limit) is reported with
the line it starts on and skipped, never fatal, so one bad row in a million costs a line
in the summary, not the import.
"""

from __future__ import annotations

import csv
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")


def numbered_records(reader: Any, unreadable: Callable[[int, str], None]) -> Iterator[tuple[int, list[str]]]:
    """(line, values) for each record of `reader` (a csv.reader) from where it stands;
    `unreadable(line, reason)` for each record it cannot read."""
    last_line = reader.line_num
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            unreadable(last_line + 1, f"unreadable CSV: {exc}")
            last_line = reader.line_num
            continue
        line, last_line = last_line + 1, reader.line_num
        yield line, values


def batches(items: Iterator[T], size: int) -> Iterator[list[T]]:
    """Lists of up to `size` items, one in memory at a time."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
