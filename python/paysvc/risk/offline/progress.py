"""A small progress bar on stderr for the offline commands (no dependency; quiet when stderr is not a TTY
unless asked, so test logs and CI stay readable)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class Progress:
    """``with Progress("replay", total) as bar: bar.update(n)``: redraws at most ten times a second."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._started_s = time.monotonic()
        self._drawn_s = 0.0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.done = max(self.done, self.total)
        self._draw(force=True)
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()

    def update(self, count: int = 1) -> None:
        self.set(self.done + count)

    def set(self, done: int) -> None:
        self.done = done
        self._draw(force=False)

    def _draw(self, *, force: bool) -> None:
        if not self._enabled:
            return
        now_s = time.monotonic()
        if not force and now_s - self._drawn_s < 0.1:
            return
        self._drawn_s = now_s
        fraction = min(self.done / self.total, 1.0)
        width = 30
        filled = int(fraction * width)
        elapsed_s = now_s - self._started_s
        rate = self.done / elapsed_s if elapsed_s > 0 else 0.0
        bar = "#" * filled + "." * (width - filled)
        self._stream.write(
            f"\r{self.label:<10} [{bar}] {fraction * 100:5.1f}% {self.done}/{self.total} "
            f"{elapsed_s:6.1f}s {rate:,.0f}/s"
        )
        self._stream.flush()
