"""``paysvc bench``: throughput, latency and the database's ceiling, measured in one run.

Starts a scratch embedded PostgreSQL and N API processes (``torture/cluster.py``), creates a tenant
with funded accounts, then drives each scenario with wrk (a native load generator, Lua script in
``lua/bench.lua``), one connection per wrk thread, spread over the API processes:

  spread        closed loop: payments between random pairs of accounts
  hot_merchant  closed loop: every payment goes to one merchant account (random sources)
  read_heavy    closed loop: 40% balance reads, 20% entry listings, 20% payment listings, 20% payments
  open_loop     fixed rates, paced per connection in the Lua script, latency without coordinated
                omission: 100 payments/s, then half the spread scenario's rate
  committer     no HTTP: the group committer alone, in this process, at fixed batch sizes
                (``committer.py``): the most one process's committer does at the batch sizes the
                HTTP scenarios' connections allow

Then pgbench runs the engine's own single-payment SQL on the same database (``pgbench.py``) for the
ceiling, and the Rust core is timed against its plain-Python reference (``core.py``). One JSON
object (also written to ``<out>/bench.json``) and PNG plots (``plots.py``); progress on stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from paysvc.bench import committer, core, pgbench, plots
from paysvc.bench.monitor import Sampler
from paysvc.bench.scenarios import Run, RunResult, Target, run_wrk, wrk_path
from paysvc.config import Settings
from paysvc.torture.cluster import ApiProcess, ScratchDatabase, TenantSession

SCENARIOS = ("spread", "hot_merchant", "read_heavy", "open_loop", "committer")
ACCOUNTS = 1000
DEPOSIT_MINOR = 10**9  # per account: a run never runs out (payments are of 1 minor unit)
OPEN_LOOP_LOW_RATE = 100.0
SETUP_CONCURRENCY = 16
MAX_PROCESSES = 8
MAX_CONNECTIONS = 256


@dataclass(frozen=True)
class Options:
    processes: int = 1
    duration_s: float = 20.0
    connections: int = 16
    out_dir: Path = Path("bench-results")
    scenarios: tuple[str, ...] = SCENARIOS
    as_json: bool = False


class BenchApi(ApiProcess):
    """An API process whose pid the memory and CPU samples follow."""

    @property
    def pid(self) -> int:
        assert self._proc is not None, "start() first"
        return self._proc.pid


def parse_scenarios(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SCENARIOS)}")
    return names


def main(settings: Settings, options: Options) -> int:
    problems = []
    if not 1 <= options.processes <= MAX_PROCESSES:
        problems.append(f"--processes must be 1..{MAX_PROCESSES}")
    if not 1 <= options.duration_s <= 3600:
        problems.append("--duration must be 1..3600 seconds")
    if not options.processes <= options.connections <= MAX_CONNECTIONS:
        problems.append(f"--connections must be between --processes and {MAX_CONNECTIONS}")
    if wrk_path() is None:
        problems.append("wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
    try:
        pgbench.pgbench_path()
        for variant in pgbench.VARIANTS.values():  # the engine's SQL must still translate, before any load
            pgbench.script(variant)
    except RuntimeError as exc:
        problems.append(str(exc))
    if problems:
        for problem in problems:
            print(f"paysvc: {problem}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # like Ctrl-C: stop what was started
    for noisy in ("httpx", "httpcore", "matplotlib", "paysvc.db"):  # only the progress lines on stderr
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        report = asyncio.run(bench(settings, options))
    except KeyboardInterrupt:
        _progress("interrupted; the scratch database and API processes are stopped")
        return 130
    if options.as_json:
        print(json.dumps(report))
    else:
        print(summary_text(report))
    return 0 if not report.get("failures") else 1


async def bench(settings: Settings, options: Options) -> dict[str, Any]:
    started = time.monotonic()
    out_dir = options.out_dir.expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": "paysvc bench " + " ".join(_argv_of(options)),
        "machine": machine_info(),
        "config": {
            "processes": options.processes, "duration_s": options.duration_s,
            "connections": options.connections, "accounts": ACCOUNTS, "payment_amount_minor": 1,
            "fee_schedule": None, "scenarios": list(options.scenarios),
        },
    }
    failures: list[str] = []

    _progress("timing the Rust core against the plain-Python reference")
    report["core"] = await asyncio.to_thread(core.run)
    _progress("timing the risk step (model evaluation, features + model + rules + decision)")
    report["risk"] = await asyncio.to_thread(core.run_risk)
    risk_figures = risk_targets(report["risk"])
    _progress(f"risk: model evaluation p50 {risk_figures['risk_model_eval_p50_us']} us, whole step p50 "
              f"{risk_figures['risk_step_p50_us']} us (native), {risk_figures['risk_step_python_call_p50_us']} us "
              "per Python call")

    root = Path(tempfile.mkdtemp(prefix="paysvc-bench-"))
    db = ScratchDatabase(root)
    apis: list[BenchApi] = []
    results: list[RunResult] = []
    keep = False
    try:
        _progress(f"starting a scratch PostgreSQL in {root}")
        url = await asyncio.to_thread(db.start)
        admin_token = secrets.token_urlsafe(24)
        pool_size = max(4, min(16, 80 // options.processes))
        env = {**os.environ, "PAYSVC_DATABASE_URL": url, "PAYSVC_ADMIN_TOKEN": admin_token,
               "PAYSVC_RATE_LIMIT_PER_S": "0", "PAYSVC_LOG_LEVEL": "WARNING", "PAYSVC_POOL_SIZE": str(pool_size)}
        report["config"]["api_env"] = {"PAYSVC_RATE_LIMIT_PER_S": "0", "PAYSVC_LOG_LEVEL": "WARNING",
                                       "PAYSVC_POOL_SIZE": str(pool_size)}
        apis = [BenchApi(f"api-{n + 1}", env, root) for n in range(options.processes)]
        for api in apis:
            api.start()
        _progress(f"starting {len(apis)} API process(es)")
        await asyncio.gather(*(api.wait_ready() for api in apis))
        report["idle_api_rss_mb"] = [round(_rss_mb(api.pid), 1) for api in apis]

        _progress(f"creating a tenant and {ACCOUNTS} funded accounts through the API")
        target = await setup_tenant(apis, admin_token, options.connections)
        tenant_pgbench = await asyncio.to_thread(pgbench.seed, url, ACCOUNTS)
        sampler = Sampler([api.pid for api in apis])

        scenario_reports: dict[str, Any] = {}
        spread_rate: float | None = None
        for name in options.scenarios:
            if name in ("open_loop", "committer"):  # below: open_loop after spread, committer without the API
                continue
            result = await _load(url, Run(name, name, options.duration_s), target, root, sampler)
            results.append(result)
            scenario_reports[name] = result.stats
            if name == "spread":
                spread_rate = result.stats["payments_per_s"]
        if "open_loop" in options.scenarios:
            open_report: dict[str, Any] = {
                "method": "wrk Lua script paced per connection (wrk2-style): latency counts from the "
                          "intended send time whenever the connection was still busy at it",
            }
            if spread_rate is None:
                calibration = await _load(
                    url, Run("calibration", "spread", min(5.0, options.duration_s)), target, root, sampler
                )
                spread_rate = calibration.stats["payments_per_s"]
                open_report["calibration"] = calibration.stats
            half = max(1.0, (spread_rate or 0.0) / 2)
            open_report["max_rate_per_s"] = spread_rate
            phase_s = max(2.0, options.duration_s / 2)
            for label, rate in (("at_100_per_s", OPEN_LOOP_LOW_RATE), ("at_half_max", half)):
                name = f"open_loop_{round(rate)}"
                if label == "at_half_max" and round(rate) == round(OPEN_LOOP_LOW_RATE):
                    name += "_half_max"  # a run name is also its log directory: keep them apart
                run = Run(name, "spread", phase_s, rate_per_s=rate)
                result = await _load(url, run, target, root, sampler)
                results.append(result)
                open_report[label] = result.stats
            scenario_reports["open_loop"] = open_report
        report["scenarios"] = scenario_reports

        for api in apis:
            api.stop()
        apis = []

        if "committer" in options.scenarios:
            sizes = sorted({1, options.connections, min(committer.MAX_BATCH_SIZE, 4 * options.connections)})
            scenario_reports["committer"] = await asyncio.to_thread(
                committer.run_on_api_loop,
                settings, url, target.api_key, target.accounts, sizes, min(5.0, options.duration_s), _progress,
            )

        report["pgbench"] = {}
        variants = ["separate_statements", "one_statement"]
        if "hot_merchant" in options.scenarios:
            variants.append("hot_separate_statements")
        for name in variants:
            variant = pgbench.VARIANTS[name]
            await asyncio.to_thread(_checkpoint, url)
            _progress(f"pgbench {name}: {options.connections} clients for {options.duration_s:.0f} s")
            outcome = await pgbench.run(
                url, variant, tenant=tenant_pgbench, n_accounts=ACCOUNTS, clients=options.connections,
                duration_s=options.duration_s, max_tries=settings.tx_max_attempts, run_dir=root, progress=_progress,
            )
            shutil.copy(root / outcome["script"], out_dir / outcome["script"])
            report["pgbench"][name] = outcome
            if "error" in outcome:
                failures.append(f"pgbench {name}: {outcome['error']}")
        attach_ceilings(report)
    except Exception:
        keep = True
        raise
    finally:
        for api in apis:
            api.stop()
        await asyncio.to_thread(db.close)
        if keep:
            _progress(f"failed: the scratch directory (API logs, wrk scripts and logs) is kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    if plots.available():
        _progress("writing plots")
        report["plots"] = [str(p) for p in await asyncio.to_thread(plots.write, results, out_dir)]
    else:
        report["plots"] = []
        _progress("matplotlib is not installed (pip install -e '.[dev]'): no plots")
    report["targets"] = targets(report)
    report["failures"] = failures
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    report["machine"]["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _progress(f"done in {report['elapsed_s']:.0f} s; results in {out_dir}")
    return report


async def _load(url: str, run: Run, target: Target, root: Path, sampler: Sampler) -> RunResult:
    await asyncio.to_thread(_checkpoint, url)
    loop = f"open loop at {run.rate_per_s:.0f} payments/s" if run.rate_per_s else "closed loop"
    _progress(f"{run.name}: {target.connections} connections, {loop}, {run.duration_s:.0f} s")
    result = await run_wrk(run, target, root / "wrk", sampler, _progress)
    s = result.stats
    _progress(f"  {run.name}: {s['requests_per_s']} req/s, {s['payments_per_s']} payments/s, "
              f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, errors {s['errors']}, "
              f"API RSS max {s['api_rss_mb_max']} MB")
    return result


def _checkpoint(url: str) -> None:
    """Start every run from a clean checkpoint, so none pays for the previous one's dirty pages."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


async def setup_tenant(apis: list[BenchApi], admin_token: str, connections: int) -> Target:
    """A tenant (no fee schedule: a fee would make every payment also write the tenant's one fee
    account), ACCOUNTS customer accounts funded from an account allowed to go negative, and a
    merchant account for the hot scenario."""
    async with httpx.AsyncClient(base_url=apis[0].base_url, timeout=60) as http:
        session = await TenantSession.create(http, admin_token, "bench")
        api_key = session.api_key
        post = session.post
        funding = (await post("/v1/accounts", {"currency": "USD", "allow_negative": True}))["id"]
        merchant = (await post("/v1/accounts", {"currency": "USD", "metadata": {"role": "merchant"}}))["id"]
        accounts: list[str] = [""] * ACCOUNTS
        gate = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def create(n: int) -> None:
            async with gate:
                account = (await post("/v1/accounts", {"currency": "USD"}))["id"]
                await post("/v1/payments", {"amount": DEPOSIT_MINOR, "currency": "USD", "source": funding,
                                            "destination": account}, key=f"bench-deposit-{n}")
                accounts[n] = account

        await asyncio.gather(*(create(n) for n in range(ACCOUNTS)))
    return Target(
        ports=[api.port for api in apis], api_key=api_key, accounts=accounts, merchant=merchant,
        connections=connections, key_nonce=secrets.token_hex(4),
    )


def attach_ceilings(report: dict[str, Any]) -> None:
    """Each payment scenario next to the pgbench ceiling of the same transaction shape."""
    ceilings = {name: r.get("tps") for name, r in report.get("pgbench", {}).items()}
    scenarios = report.get("scenarios", {})
    for stats in scenarios.get("committer", {}).get("by_batch_size", {}).values():
        stats["ratio_to_ceiling"] = _ratio(stats.get("payments_per_s"), ceilings.get("separate_statements"))
    pairs = {"spread": "separate_statements", "hot_merchant": "hot_separate_statements"}
    for scenario, variant in pairs.items():
        stats = scenarios.get(scenario)
        if stats is None:
            continue
        ceiling = ceilings.get(variant)
        stats["pgbench_ceiling_variant"] = variant
        stats["pgbench_ceiling_tps"] = ceiling
        stats["ratio_to_ceiling"] = _ratio(stats.get("payments_per_s"), ceiling)
        if scenario == "spread":
            stats["pgbench_one_statement_tps"] = ceilings.get("one_statement")
            stats["ratio_to_one_statement_ceiling"] = _ratio(stats.get("payments_per_s"), ceilings.get("one_statement"))
    if "read_heavy" in scenarios:
        scenarios["read_heavy"]["pgbench_ceiling_tps"] = None
        scenarios["read_heavy"]["pgbench_ceiling_note"] = "no pgbench ceiling for the read mix"
    if "spread" in scenarios and "hot_merchant" in scenarios:
        scenarios["hot_merchant"]["ratio_to_spread"] = _ratio(
            scenarios["hot_merchant"].get("payments_per_s"), scenarios["spread"].get("payments_per_s")
        )
    processes, cpus = report["config"]["processes"], report["machine"]["cpus"] or 1
    for stats in _flat_runs(scenarios):
        if stats.get("payments_per_s") is not None:
            stats["payments_per_s_per_process"] = round(stats["payments_per_s"] / processes, 1)
            stats["payments_per_s_per_core"] = round(stats["payments_per_s"] / cpus, 1)


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """The figures the performance issue asks to report, in one place."""
    scenarios = report.get("scenarios", {})
    spread = scenarios.get("spread", {})
    hot = scenarios.get("hot_merchant", {})
    open_loop = scenarios.get("open_loop", {})
    core_report = report.get("core", {})
    rss = [s.get("api_rss_mb_max") for s in _flat_runs(scenarios)]
    return {
        "spread_payments_per_s": spread.get("payments_per_s"),
        "pgbench_separate_statements_tps": report.get("pgbench", {}).get("separate_statements", {}).get("tps"),
        "spread_ratio_to_separate_statements_ceiling": spread.get("ratio_to_ceiling"),
        "hot_merchant_payments_per_s": hot.get("payments_per_s"),
        "hot_merchant_ratio_to_spread": hot.get("ratio_to_spread"),
        "open_loop_p99_ms_at_half_max": open_loop.get("at_half_max", {}).get("p99_ms"),
        "open_loop_half_max_rate_per_s": open_loop.get("at_half_max", {}).get("target_rate_per_s"),
        "open_loop_p50_ms_at_100_per_s": open_loop.get("at_100_per_s", {}).get("p50_ms"),
        "core_speedup_prepare_payment": core_report.get("headline_ratio"),
        "core_speedup_geomean": core_report.get("geomean_ratio"),
        "core_speedup_at_least_10x": (core_report.get("headline_ratio") or 0) >= 10,
        **risk_targets(report.get("risk", {})),
        "api_rss_mb_max_under_load": max((v for v in rss if v is not None), default=None),
        # The same batch size as the HTTP connections allow, without HTTP (what bounds `spread`).
        "committer_alone_ratio_to_ceiling": scenarios.get("committer", {}).get("by_batch_size", {}).get(
            str(report.get("config", {}).get("connections")), {}).get("ratio_to_ceiling"),
    }


def risk_targets(risk: dict[str, Any]) -> dict[str, Any]:
    """Issue 17's figures: model evaluation p50 <= 2 us, the whole risk step p50 <= 8 us (native)."""
    native = risk.get("native", {})
    model_eval = native.get("model_eval", {})
    step = native.get("step", {})
    python_call = risk.get("python_call", {})
    return {
        "risk_model_eval_p50_us": model_eval.get("p50_us"),
        "risk_model_eval_p99_us": model_eval.get("p99_us"),
        "risk_step_p50_us": step.get("p50_us"),
        "risk_step_p99_us": step.get("p99_us"),
        "risk_step_python_call_p50_us": python_call.get("step", {}).get("p50_us"),
        "risk_step_python_call_p99_us": python_call.get("step", {}).get("p99_us"),
        "risk_model_eval_p50_at_most_2us": model_eval.get("p50_us") is not None and model_eval["p50_us"] <= 2,
        "risk_step_p50_at_most_8us": step.get("p50_us") is not None and step["p50_us"] <= 8,
    }


def _flat_runs(scenarios: dict[str, Any]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for name, stats in scenarios.items():
        if name == "open_loop":
            runs += [v for k, v in stats.items() if isinstance(v, dict)]
        elif name == "committer":
            continue  # no API process in it
        else:
            runs.append(stats)
    return runs


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return round(value / reference, 3)


def _rss_mb(pid: int) -> float:
    from paysvc.bench.monitor import process_tree, rss_kb

    return sum(rss_kb(p) for p in process_tree(pid)) / 1024


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
    }
    repo = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=False).stdout.strip()
        if head:
            info["source"] = f"{head}{' (with uncommitted changes)' if dirty else ''}"
    except OSError:
        pass
    try:
        info["wrk"] = subprocess.run([wrk_path() or "wrk", "-v"], capture_output=True, text=True,
                                     check=False).stdout.splitlines()[0].strip()
        info["pgbench"] = subprocess.run([str(pgbench.pgbench_path()), "--version"], capture_output=True,
                                         text=True, check=False).stdout.strip()
    except (OSError, RuntimeError, IndexError):
        pass
    return info


def summary_text(report: dict[str, Any]) -> str:
    lines = [f"{'run':<22}{'req/s':>9}{'pay/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
             f"{'ceiling':>9}{'ratio':>7}{'RSS MB':>8}"]

    def row(name: str, s: dict[str, Any]) -> None:
        lines.append(f"{name:<22}{_fmt(s.get('requests_per_s')):>9}{_fmt(s.get('payments_per_s')):>9}"
                     f"{_fmt(s.get('p50_ms')):>9}{_fmt(s.get('p99_ms')):>9}{_fmt(s.get('errors')):>8}"
                     f"{_fmt(s.get('pgbench_ceiling_tps')):>9}{_fmt(s.get('ratio_to_ceiling')):>7}"
                     f"{_fmt(s.get('api_rss_mb_max')):>8}")

    for name, stats in report.get("scenarios", {}).items():
        if name == "open_loop":
            for label in ("at_100_per_s", "at_half_max"):
                if label in stats:
                    row(f"open_loop {label}", stats[label])
        elif name == "committer":
            for size, s in stats.get("by_batch_size", {}).items():
                lines.append(
                    f"committer alone (no HTTP), {size} per batch: {_fmt(s.get('payments_per_s'))} payments/s, "
                    f"{_fmt(s.get('ms_per_batch'))} ms per batch, "
                    f"{_fmt(s.get('process_cpu_ms_per_payment'))} ms CPU per payment, errors {_fmt(s.get('errors'))}, "
                    f"ratio to the ceiling {_fmt(s.get('ratio_to_ceiling'))}"
                )
        else:
            row(name, stats)
    for name, outcome in report.get("pgbench", {}).items():
        lines.append(f"pgbench {name}: {outcome.get('tps')} tps, failed {outcome.get('failed')}, "
                     f"retried {outcome.get('retried')}")
    core_report = report.get("core", {})
    if "functions" in core_report:
        lines.append("Rust core vs Python reference: " + ", ".join(
            f"{name} {f['ratio']}x ({f['native_ns']:.0f} vs {f['reference_ns']:.0f} ns)"
            for name, f in core_report["functions"].items()
        ))
    risk_figures = risk_targets(report.get("risk", {}))
    if risk_figures["risk_step_p50_us"] is not None:
        lines.append(
            f"risk: model evaluation p50 {_fmt(risk_figures['risk_model_eval_p50_us'])} us "
            f"(p99 {_fmt(risk_figures['risk_model_eval_p99_us'])}), whole step p50 "
            f"{_fmt(risk_figures['risk_step_p50_us'])} us (p99 {_fmt(risk_figures['risk_step_p99_us'])}), "
            f"through Python p50 {_fmt(risk_figures['risk_step_python_call_p50_us'])} us"
        )
    for failure in report.get("failures", []):
        lines.append(f"failure: {failure}")
    if report.get("plots"):
        lines.append("plots: " + ", ".join(report["plots"]))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if value < 10 else f"{value:.0f}"
    return str(value)


def _argv_of(options: Options) -> list[str]:
    return [f"--processes {options.processes}", f"--duration {options.duration_s:g}",
            f"--connections {options.connections}", f"--scenarios {','.join(options.scenarios)}"]


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
