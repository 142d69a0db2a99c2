"""A progress line for the bulk commands (`leadsms import`, `leadsms optouts import`).

One `\\r` line on a terminal (redrawn at most 10 times a second, with a bar), else a plain
line every `PLAIN_EVERY_S` seconds. Written to stderr by the commands, so stdout carries
only their JSON summary.
"""

from __future__ import annotations

import time
from typing import Callable, TextIO


class ProgressLine:
    PLAIN_EVERY_S = 5.0
    BAR_WIDTH = 24

    def __init__(self, stream: TextIO | None, total_bytes: int, label: str) -> None:
        self.stream = stream
        self.total = total_bytes
        self.label = label
        self.tty = bool(stream is not None and stream.isatty())
        self.started = time.monotonic()
        self.last = 0.0

    def show(self, done_bytes: int, counts: Callable[[float], str], *, final: bool = False) -> None:
        """Draw the line if one is due; `counts(elapsed_s)` says what to show after the percentage."""
        if self.stream is None:
            return
        now = time.monotonic()
        if not final and now - self.last < (0.1 if self.tty else self.PLAIN_EVERY_S):
            return
        self.last = now
        pct = min(100.0 * done_bytes / self.total if self.total else 100.0, 100.0)
        text = f"{self.label} {pct:5.1f}%  {counts(max(now - self.started, 1e-9))}"
        if self.tty:
            filled = int(self.BAR_WIDTH * pct / 100)
            self.stream.write(f"\r[{'#' * filled}{'.' * (self.BAR_WIDTH - filled)}] {text}\x1b[K")
            if final:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
