"""What the API processes cost while the load runs: resident memory (``VmRSS`` in /proc/<pid>/status)
and CPU time, sampled from /proc (Linux only; elsewhere the samples stay empty)."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
SAMPLE_EVERY_S = 0.5


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a ``paysvc serve`` with several workers has children)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in (PROC / str(current) / "task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def rss_kb(pid: int) -> int:
    """VmRSS of one process in kB (0 when it is gone)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (0 when it is gone)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    try:
        first = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0, 0
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class Usage:
    """Samples of one load run: the API processes' memory over time and their CPU use."""

    started: float
    rss_series: list[tuple[float, float]] = field(default_factory=list)  # (s since start, MB over all)
    rss_max_mb_by_process: list[float] = field(default_factory=list)
    api_cpu_s: float = 0.0
    machine_busy: float = 0.0  # fraction of all CPUs busy (API, database and load generator)

    def summary(self, wall_s: float) -> dict[str, object]:
        values = [mb for _, mb in self.rss_series]
        return {
            "api_rss_mb_max": round(max(values), 1) if values else None,
            "api_rss_mb_mean": round(sum(values) / len(values), 1) if values else None,
            "api_rss_mb_max_by_process": [round(v, 1) for v in self.rss_max_mb_by_process],
            "api_cpu_cores": round(self.api_cpu_s / wall_s, 2) if wall_s > 0 else None,
            "machine_cpu_busy": round(self.machine_busy, 2),
        }


class Sampler:
    """Samples the API processes every half second until stopped."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.usage = Usage(started=time.monotonic())
        self._task: asyncio.Task[None] | None = None
        self._cpu_start = 0.0
        self._ticks_start = (0, 0)

    def _cpu(self) -> float:
        return sum(cpu_seconds(p) for pid in self.pids for p in process_tree(pid))

    def start(self) -> None:
        self.usage = Usage(started=time.monotonic())
        self.usage.rss_max_mb_by_process = [0.0 for _ in self.pids]
        self._cpu_start = self._cpu()
        self._ticks_start = machine_ticks()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            total = 0.0
            for n, pid in enumerate(self.pids):
                mb = sum(rss_kb(p) for p in process_tree(pid)) / 1024
                total += mb
                self.usage.rss_max_mb_by_process[n] = max(self.usage.rss_max_mb_by_process[n], mb)
            self.usage.rss_series.append((time.monotonic() - self.usage.started, total))
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def stop(self) -> Usage:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.usage.api_cpu_s = self._cpu() - self._cpu_start
        busy0, total0 = self._ticks_start
        busy1, total1 = machine_ticks()
        self.usage.machine_busy = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
        return self.usage
