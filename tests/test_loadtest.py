"""The locust scenarios in loadtest/: the locustfile defines what loadtest/README.md documents, the SLO
gate's verdicts, and (when locust is installed: `pip install -e '.[loadtest]'`; CI installs only
`.[dev]`) real headless runs against the test server, one within budget (exit 0) and one over it (exit 1).

locust is never imported here: importing it monkey-patches the whole process with gevent. The runs are
subprocesses, and the gate's arithmetic (loadtest/paysvc_load/slo.py) imports only the standard library.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import conftest
from conftest import RunningServer

ROOT = Path(__file__).resolve().parent.parent
LOADTEST = ROOT / "loadtest"
LOCUSTFILE = LOADTEST / "locustfile.py"
USER_CLASSES = {"SteadyUser", "HotMerchantUser"}
SHAPE_CLASS = "SpikeShape"
HAS_LOCUST = importlib.util.find_spec("locust") is not None
needs_locust = pytest.mark.skipif(not HAS_LOCUST, reason="locust is not installed (pip install -e '.[loadtest]')")


def _classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _base_names(cls: ast.ClassDef) -> set[str]:
    return {ast.unparse(base) for base in cls.bases}


def _load_slo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("paysvc_load_slo", LOADTEST / "paysvc_load" / "slo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_locustfile_defines_the_documented_scenarios_shape_and_gate() -> None:
    tree = ast.parse(LOCUSTFILE.read_text(encoding="utf-8"), filename=str(LOCUSTFILE))
    classes = _classes(tree)
    for name in USER_CLASSES:
        assert name in classes, f"{name} is missing"
        assert _base_names(classes[name]) == {"PaysvcUser"}
        tasks = [f for f in classes[name].body if isinstance(f, ast.FunctionDef)
                 and any(ast.unparse(d).startswith("task") for d in f.decorator_list)]
        assert len(tasks) >= 4, f"{name} has too few tasks"
    assert "FastHttpUser" in _base_names(classes["PaysvcUser"])
    shape = classes[SHAPE_CLASS]
    assert _base_names(shape) == {"LoadTestShape"}
    assert any(isinstance(f, ast.FunctionDef) and f.name == "tick" for f in shape.body)
    shape_source = ast.unparse(shape)
    assert "abstract = " in shape_source and "SHAPE_ENV" in shape_source  # active only when asked for
    assert "use_common_options = True" in shape_source
    assert 'SHAPE_ENV = "PAYSVC_LOAD_SHAPE"' in LOCUSTFILE.read_text(encoding="utf-8")

    listeners = {ast.unparse(d) for node in tree.body if isinstance(node, ast.FunctionDef)
                 for d in node.decorator_list}
    for event in ("quitting", "test_start", "init", "init_command_line_parser"):
        assert f"events.{event}.add_listener" in listeners, f"no {event} listener"

    readme = (LOADTEST / "README.md").read_text(encoding="utf-8")
    for documented in (*USER_CLASSES, SHAPE_CLASS, "PAYSVC_LOAD_SHAPE=spike", "PAYSVC_ADMIN_TOKEN",
                       "--slo-p99-ms", "--slo-fail-ratio", "--headless", ".[loadtest]"):
        assert documented in readme, f"loadtest/README.md does not mention {documented}"


def test_loadtest_helpers_parse() -> None:
    for path in sorted((LOADTEST / "paysvc_load").glob("*.py")):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_slo_gate_verdicts() -> None:
    slo = _load_slo()
    limits = slo.Limits(p99_ms=250, fail_ratio=0.01)
    assert slo.Limits() == limits  # the documented defaults
    ok = slo.Totals(requests=1000, failures=10, p99_ms=250)
    assert slo.breaches(ok, limits) == []  # at the limits is within them
    assert slo.summary(ok, limits).startswith("SLO gate: PASS")

    slow = slo.Totals(requests=1000, failures=0, p99_ms=251)
    assert slo.breaches(slow, limits) == ["p99 251 ms > limit 250 ms"]
    failing = slo.Totals(requests=1000, failures=11, p99_ms=10)
    [reason] = slo.breaches(failing, limits)
    assert reason.startswith("failure ratio 1.10% (11/1000)")
    assert len(slo.breaches(slo.Totals(requests=100, failures=50, p99_ms=900), limits)) == 2
    assert slo.breaches(slo.Totals(requests=0, failures=0, p99_ms=0), limits) == ["no request was made"]
    assert slo.breaches(slo.Totals(requests=10, failures=0, p99_ms=5, exceptions=1), limits) == [
        "1 exception(s) in the locustfile's tasks"]
    assert slo.summary(slow, limits).startswith("SLO gate: FAIL (p99 251 ms > limit 250 ms)")


def _run_locust(server: RunningServer, tmp_path: Path, *args: str, seconds: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYSVC_SLO_", "PAYSVC_LOAD_", "LOCUST_"))}
    env["PAYSVC_ADMIN_TOKEN"] = conftest.ADMIN_TOKEN
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", server.base_url,
               "-u", "8", "-r", "8", "-t", f"{seconds}s", "--customers", "20", "--csv", str(tmp_path / "run"),
               "--only-summary", "--loglevel", "WARNING", *args, "SteadyUser"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 90,
                          check=False)


@needs_locust
@pytest.mark.timeout(150)
def test_steady_headless_run_passes_the_gate(app_server: RunningServer, tmp_path: Path) -> None:
    # The budget is generous: this checks the machinery (CI's machine also runs the server in this
    # process), not the service's latency, which loadtest/README.md records.
    done = _run_locust(app_server, tmp_path, "--slo-p99-ms", "3000", "--slo-fail-ratio", "0.02", seconds=10)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "SLO gate: PASS" in done.stderr
    with (tmp_path / "run_stats.csv").open(encoding="utf-8") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    assert int(rows["Aggregated"]["Request Count"]) > 0
    names = set(rows) - {"Aggregated"}
    assert "/v1/payments" in names and "/v1/accounts/[id]" in names
    # Requests are named by route template: no row per payment or account id.
    assert not [n for n in names if "acct_" in n or "pay_" in n], names


@needs_locust
@pytest.mark.timeout(120)
def test_gate_fails_a_run_over_budget(app_server: RunningServer, tmp_path: Path) -> None:
    done = _run_locust(app_server, tmp_path, "--slo-p99-ms", "0", seconds=3)
    assert done.returncode == 1, done.stderr[-4000:]
    assert "SLO gate: FAIL (p99 " in done.stderr
