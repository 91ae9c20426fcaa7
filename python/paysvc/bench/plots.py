"""The bench's PNG plots (matplotlib, imported lazily, Agg backend: no display needed).

  throughput.png          answers/s (and errors/s) over time per run, with the API processes' RSS
  latency.png             p50 and p99 latency over time per run (per second, or shorter bins in short runs)
  latency_histogram.png   the latency distribution of each run (log scale)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paysvc.bench.scenarios import RunResult, percentile


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _bins(result: RunResult) -> tuple[float, list[float], list[float], list[float], list[list[int]]]:
    """Bin width, bin centres, answers/s and errors/s per bin, latencies (us) per bin; full bins only."""
    width = next((w for w in (1.0, 0.5) if w <= result.wall_s / 20), 0.25)
    n = max(1, int(result.wall_s / width))
    ok = [0] * n
    bad = [0] * n
    latencies: list[list[int]] = [[] for _ in range(n)]
    for r in result.records:
        i = int(r.t_s / width)
        if not 0 <= i < n:
            continue
        if 200 <= r.status < 300:
            ok[i] += 1
        else:
            bad[i] += 1
        latencies[i].append(r.latency_us)
    centres = [(i + 0.5) * width for i in range(n)]
    return width, centres, [v / width for v in ok], [v / width for v in bad], latencies


def _plain_log_ticks(axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}" if str(f"{v:g}")[0] in "25" else ""))


def write(results: list[RunResult], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    n = len(results)
    if n == 0:
        return paths

    # ---- throughput over time ----
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n), squeeze=False)
    for ax, result in zip(axes[:, 0], results, strict=True):
        _, centres, ok, bad, _ = _bins(result)
        ax.plot(centres, ok, label="2xx answers/s", color="tab:blue")
        if any(bad):
            ax.plot(centres, bad, label="errors/s", color="tab:red")
        ax.set_title(_title(result))
        ax.set_xlabel("s")
        ax.set_ylabel("answers/s")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        rss = result.usage.rss_series
        if rss:
            twin: Any = ax.twinx()
            twin.plot([t for t, _ in rss], [mb for _, mb in rss], color="tab:gray", linestyle="--",
                      label="API RSS (MB)")
            twin.set_ylabel("API RSS MB")
            twin.set_ylim(bottom=0)
            lines = ax.get_legend_handles_labels()
            more = twin.get_legend_handles_labels()
            ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right", fontsize="small")
        else:
            ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "throughput.png"))
    plt.close(fig)

    # ---- latency over time ----
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n), squeeze=False)
    for ax, result in zip(axes[:, 0], results, strict=True):
        width, centres, _, _, latencies = _bins(result)
        with_data = [(c, sorted(v)) for c, v in zip(centres, latencies, strict=True) if v]
        ax.plot([c for c, _ in with_data], [percentile(v, 50) / 1000 for _, v in with_data], label="p50",
                color="tab:blue")
        ax.plot([c for c, _ in with_data], [percentile(v, 99) / 1000 for _, v in with_data], label="p99",
                color="tab:orange")
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
        ax.set_title(_title(result))
        ax.set_xlabel("s")
        ax.set_ylabel(f"latency ms (per {width:g} s)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "latency.png"))
    plt.close(fig)

    # ---- latency histogram ----
    fig, ax = plt.subplots(figsize=(10, 5))
    all_ms = [r.latency_us / 1000 for result in results for r in result.records]
    if all_ms:
        low = max(min(all_ms), 0.05)
        high = max(max(all_ms), low * 2)
        bins = [low * (high / low) ** (i / 80) for i in range(81)]
        for result in results:
            values = [r.latency_us / 1000 for r in result.records]
            if values:
                ax.hist(values, bins=bins, weights=[1 / len(values)] * len(values), histtype="step",
                        linewidth=1.5, label=f"{result.run.name} ({len(values)} answers)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("latency ms (log scale)")
    ax.set_ylabel("share of the run's answers")
    ax.set_title("latency distribution per run")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "latency_histogram.png"))
    plt.close(fig)
    return paths


def _title(result: RunResult) -> str:
    stats = result.stats
    loop = f"open loop at {result.run.rate_per_s:.0f}/s" if result.run.rate_per_s else "closed loop"
    return (f"{result.run.name} ({loop}): {stats.get('requests_per_s')} req/s, "
            f"p50 {stats.get('p50_ms')} ms, p99 {stats.get('p99_ms')} ms")


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    return path
