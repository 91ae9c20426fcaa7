"""The load scenarios, driven by wrk (a native HTTP load generator) with the Lua script in ``lua/``.

wrk runs with one connection per thread, so each thread's Lua state follows one connection: every
response is matched to its request and logged (done time, latency, status, kind) to a file per
thread, from which this module computes throughput, percentiles and the time series of the plots.
Open loop is paced per connection in the Lua script (see ``lua/bench.lua``).
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from paysvc.bench.monitor import Sampler, Usage

# The share of each request kind in the read-heavy mix (the rest are payments).
READ_MIX = {"balance": 0.4, "entries": 0.2, "listing": 0.2}
KINDS = {"p": "payment", "b": "balance", "e": "entries", "l": "listing"}
PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class Run:
    """One wrk run: a scenario's load for ``duration_s`` seconds."""

    name: str  # spread, hot_merchant, read_heavy, open_loop_100, ...
    mode: str  # what the Lua script sends: spread, hot_merchant or read_heavy
    duration_s: float
    rate_per_s: float = 0.0  # open loop: the total rate; 0: closed loop


@dataclass(frozen=True)
class Target:
    """What every run is aimed at: the API processes and the tenant's accounts."""

    ports: list[int]
    api_key: str
    accounts: list[str]
    merchant: str
    connections: int
    key_nonce: str
    amount: int = 1


@dataclass
class Record:
    t_s: float  # when the answer came, seconds after the run started
    latency_us: int
    status: int
    kind: str


@dataclass
class RunResult:
    run: Run
    wall_s: float
    records: list[Record]
    wrk: dict[str, int]
    usage: Usage
    stats: dict[str, Any] = field(default_factory=dict)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def lua_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def lua_script(run: Run, target: Target, log_dir: Path) -> str:
    """The run's wrk script: its configuration, then the shipped ``lua/bench.lua``."""
    rate_per_conn = run.rate_per_s / target.connections if run.rate_per_s > 0 else 0.0
    accounts = ",\n    ".join(lua_string(a) for a in target.accounts)
    mix = ", ".join(f"{k} = {v}" for k, v in READ_MIX.items())
    config = (
        "local CONFIG = {\n"
        f"  mode = {lua_string(run.mode)},\n"
        f"  rate_per_conn = {rate_per_conn!r},\n"
        f"  connections = {target.connections},\n"
        f"  ports = {{{', '.join(str(p) for p in target.ports)}}},\n"
        f"  api_key = {lua_string(target.api_key)},\n"
        f"  merchant = {lua_string(target.merchant)},\n"
        f"  amount = {target.amount},\n"
        f"  key_prefix = {lua_string(f'bench-{target.key_nonce}-{run.name}')},\n"
        f"  log_dir = {lua_string(str(log_dir))},\n"
        f"  mix = {{{mix}}},\n"
        f"  accounts = {{\n    {accounts}\n  }},\n"
        "}\n\n"
    )
    body = resources.files("paysvc.bench").joinpath("lua/bench.lua").read_text(encoding="utf-8")
    return config + body


async def run_wrk(
    run: Run, target: Target, run_dir: Path, sampler: Sampler, progress: Callable[[str], None]
) -> RunResult:
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not on PATH")
    log_dir = run_dir / run.name
    log_dir.mkdir(parents=True, exist_ok=True)
    script = run_dir / f"{run.name}.lua"
    script.write_text(lua_script(run, target, log_dir), encoding="utf-8")
    duration = max(1, round(run.duration_s))
    argv = [wrk, "-t", str(target.connections), "-c", str(target.connections), "-d", f"{duration}s",
            "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{target.ports[0]}/"]
    started = time.monotonic()
    sampler.start()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    ticker = asyncio.create_task(_tick(run, log_dir, started, sampler, progress))
    try:
        stdout, stderr = await proc.communicate()
    except BaseException:  # cancelled or interrupted: wrk must not outlive the run
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    finally:
        ticker.cancel()
        try:
            await ticker
        except asyncio.CancelledError:
            pass
        usage = await sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stderr.decode(errors='replace').strip()}")
    summary: dict[str, int] = {}
    for line in stdout.decode(errors="replace").splitlines():
        if line.startswith("WRK_SUMMARY "):
            summary = json.loads(line.removeprefix("WRK_SUMMARY "))
    if not summary:
        raise RuntimeError(f"wrk printed no summary: {stdout.decode(errors='replace')[-2000:]}")
    records = read_records(log_dir, started)
    wall_s = summary["duration_us"] / 1e6
    result = RunResult(run, wall_s, records, summary, usage)
    result.stats = run_stats(result)
    return result


async def _tick(run: Run, log_dir: Path, started: float, sampler: Sampler, progress: Callable[[str], None]) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        elapsed = time.monotonic() - started
        answered = await asyncio.to_thread(_count_answers, log_dir)
        rss = sampler.usage.rss_series[-1][1] if sampler.usage.rss_series else 0.0
        progress(f"  {run.name}: t={elapsed:4.0f}s ~{answered} answers (~{answered / elapsed:.0f}/s), "
                 f"API RSS {rss:.0f} MB")


def _count_answers(log_dir: Path) -> int:
    """Answers logged so far (the logs are buffered: a little behind)."""
    return sum(p.read_bytes().count(b"\n") for p in log_dir.glob("thread-*.log"))


def read_records(log_dir: Path, started: float) -> list[Record]:
    records: list[Record] = []
    for path in sorted(log_dir.glob("thread-*.log")):
        for line in path.read_text(encoding="ascii", errors="replace").splitlines():
            parts = line.split()
            if len(parts) != 4:
                continue  # a line cut short when wrk stopped
            done_us, latency_us, status, kind = parts
            records.append(Record(int(done_us) / 1e6 - started, int(latency_us), int(status), kind))
    records.sort(key=lambda r: r.t_s)
    return records


def percentile(sorted_values: list[int], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def _ms(us: float) -> float | None:
    return None if math.isnan(us) else round(us / 1000, 3)


def latency_stats(records: list[Record]) -> dict[str, Any]:
    values = sorted(r.latency_us for r in records)
    return {
        "p50_ms": _ms(percentile(values, 50)),
        "p90_ms": _ms(percentile(values, 90)),
        "p99_ms": _ms(percentile(values, 99)),
        "max_ms": _ms(float(values[-1])) if values else None,
    }


def run_stats(result: RunResult) -> dict[str, Any]:
    records, wall = result.records, result.wall_s
    ok = [r for r in records if 200 <= r.status < 300]
    payments_ok = sum(1 for r in ok if r.kind == "p")
    statuses = Counter(str(r.status) for r in records)
    socket_errors = {k: result.wrk.get(k, 0) for k in ("connect", "read", "write", "timeout")}
    errors = len(records) - len(ok) + sum(socket_errors.values())
    stats: dict[str, Any] = {
        "mode": "open loop" if result.run.rate_per_s else "closed loop",
        "duration_s": round(wall, 2),
        "requests": len(records),
        "requests_per_s": round(len(records) / wall, 1) if wall else None,
        "payments": payments_ok,
        "payments_per_s": round(payments_ok / wall, 1) if wall else None,
        **latency_stats(records),
        "errors": errors,
        "statuses": dict(sorted(statuses.items())),
        "socket_errors": socket_errors,
    }
    if result.run.rate_per_s:
        stats["target_rate_per_s"] = round(result.run.rate_per_s, 1)
        stats["latency_from"] = "intended send time when the connection was still busy, else the actual send"
    else:
        stats["wrk_p50_ms"] = _ms(result.wrk.get("p50_us", math.nan))
        stats["wrk_p99_ms"] = _ms(result.wrk.get("p99_us", math.nan))
    kinds = {r.kind for r in records}
    if len(kinds) > 1:
        by_kind: dict[str, Any] = {}
        for kind in sorted(kinds):
            of_kind = [r for r in records if r.kind == kind]
            by_kind[KINDS.get(kind, kind)] = {
                "requests": len(of_kind),
                "requests_per_s": round(len(of_kind) / wall, 1) if wall else None,
                **latency_stats(of_kind),
            }
        stats["by_kind"] = by_kind
    stats.update(result.usage.summary(wall))
    return stats
