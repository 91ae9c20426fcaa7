"""docker-compose.yml, the Dockerfile and .dockerignore, checked by parsing (no Docker engine runs here).

Each ``*_problems`` function returns what is wrong with a parsed file (an empty list when nothing is). The
tests assert that the files in the repository have no problem, and that each check does catch a broken
copy of them (the mutation tests at the end), so that a check cannot pass by looking at nothing.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import psycopg.conninfo
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from paysvc.cli import parser as cli_parser
from paysvc.config import Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

COCKROACH_IMAGE = "cockroachdb/cockroach"
LOCUST_IMAGE = "locustio/locust"
SQL_PORT = "26257"
CONSOLE_PORT = 8080
API_PORT = 8000
LOCUST_PORT = 8089
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (inside a container: reachable through the published port only)
ENV_PREFIX = "PAYSVC_"
SETTINGS_VARS = {ENV_PREFIX + f.name.upper() for f in msgspec.structs.fields(Settings)}

Compose = dict[str, Any]
Service = dict[str, Any]


# ---------------------------------------------------------------- helpers

def load_compose() -> Compose:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "no services in docker-compose.yml"
    return data


def services(compose: Compose) -> dict[str, Service]:
    found: dict[str, Service] = compose["services"]
    return found


_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str] | None = None) -> str:
    """What Compose makes of a string: ``$$`` is a literal ``$``; ``${NAME:-default}`` is the variable or
    its default. Raises ValueError for a bare ``$`` (Compose would read a variable there) or a variable
    without a default (the file would then need a .env to work)."""
    env = env or {}
    pieces = []
    for piece in value.split("$$"):
        def substitute(match: re.Match[str]) -> str:
            name = match["name"]
            if name in env:
                return env[name]
            if match["op"] is None:
                raise ValueError(f"${{{name}}} has no default")
            return match["default"]

        resolved = _VARIABLE.sub(substitute, piece)
        if "$" in resolved:
            raise ValueError(f"unescaped $ (write $$ for the shell) in {value[:60]!r}")
        pieces.append(resolved)
    return "$".join(pieces)


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def argv(value: Any) -> list[str]:
    """A command or entrypoint as Compose runs it (a string is split like a shell would)."""
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(interpolate(value))
    return [interpolate(str(v)) for v in value]


def flags(args: list[str]) -> dict[str, str]:
    """``--name=value`` and ``--name value`` (a flag followed by another flag has the value "")."""
    found: dict[str, str] = {}
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        name, eq, value = arg.partition("=")
        if eq:
            found[name] = value
        elif i + 1 < len(args) and not args[i + 1].startswith("-"):
            found[name] = args[i + 1]
        else:
            found[name] = ""
    return found


def depends_on(service: Service) -> dict[str, str]:
    """Dependency name -> condition (the short list form means service_started)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {str(name): "service_started" for name in raw}
    return {str(name): str((spec or {}).get("condition", "service_started")) for name, spec in raw.items()}


def environment(service: Service) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (str(item).partition("=") for item in raw)
        return {name: interpolate(value) for name, _, value in pairs}
    return {str(name): interpolate(str(value)) for name, value in raw.items() if value is not None}


def published(service: Service) -> dict[int, int]:
    """Host port -> container port."""
    mapping: dict[int, int] = {}
    for port in service.get("ports") or []:
        parts = str(port).split(":")
        if len(parts) < 2:
            continue  # a container port alone: published on a random host port
        mapping[int(parts[-2])] = int(parts[-1].split("/")[0])
    return mapping


def healthcheck_text(service: Service) -> str | None:
    check = service.get("healthcheck")
    if not check or check.get("disable"):
        return None
    test = check.get("test")
    if isinstance(test, list):
        if not test or test[0] == "NONE":
            return None
        return " ".join(str(t) for t in test)
    return str(test) if test else None


def image_tag(image: str) -> tuple[str, str]:
    name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    return name, tag


def pinned_problems(where: str, image: str) -> list[str]:
    _name, tag = image_tag(image)
    if not tag:
        return [f"{where}: image {image!r} has no tag"]
    if tag == "latest" or tag.startswith("latest") or not re.search(r"\d+\.\d+", tag):
        return [f"{where}: image {image!r} is not pinned to a version"]
    return []


def version_of(text: str) -> tuple[int, ...]:
    match = re.search(r"\d+(?:\.\d+)*", text)
    assert match is not None, f"no version in {text!r}"
    return tuple(int(part) for part in match.group(0).split("."))


def is_paysvc_image(service: Service) -> bool:
    build = service.get("build")
    if build is None:
        return False
    context = build if isinstance(build, str) else build.get("context", ".")
    return (COMPOSE_FILE.parent / context).resolve() == ROOT


def parse_paysvc(args: list[str]) -> tuple[Any, str | None]:
    """Parse ``paysvc …`` with the real command-line parser: (namespace, None) or (None, error)."""
    if not args or args[0] != "paysvc":
        return None, f"does not run paysvc: {args!r}"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return cli_parser().parse_args(args[1:]), None
    except SystemExit:
        return None, f"`{shlex.join(args)}` is not a paysvc command: {stderr.getvalue().strip()}"


def python_check_problems(where: str, command: list[str], port: int) -> list[str]:
    """A health check written as ``python -c CODE``: CODE compiles, asks /readyz on the served port."""
    if "-c" not in command or command.index("-c") + 1 >= len(command):
        return [f"{where}: health check is not `python -c …`: {command!r}"]
    code = command[command.index("-c") + 1]
    try:
        compile(code, where, "exec")
    except SyntaxError as exc:
        return [f"{where}: health check code does not compile: {exc}"]
    if f":{port}/readyz" not in code:
        return [f"{where}: health check does not ask :{port}/readyz"]
    return []


def cockroach_nodes(compose: Compose) -> dict[str, list[str]]:
    """Service name -> argv of the services that run `cockroach start`."""
    nodes = {}
    for name, service in services(compose).items():
        args = argv(service.get("command"))
        if str(service.get("image", "")).startswith(COCKROACH_IMAGE) and args[:1] == ["start"]:
            nodes[name] = args
    return nodes


def the_api(compose: Compose) -> tuple[str, Service, Any]:
    """The service that runs `paysvc serve` (name, service, parsed arguments)."""
    found = []
    for name, service in services(compose).items():
        if is_paysvc_image(service):
            parsed, _error = parse_paysvc(argv(service.get("command")))
            if parsed is not None and parsed.command == "serve":
                found.append((name, service, parsed))
    assert len(found) == 1, f"expected one service running `paysvc serve`, found {[f[0] for f in found]}"
    return found[0]


# ---------------------------------------------------------------- docker-compose.yml checks

def cockroach_problems(compose: Compose) -> list[str]:
    problems: list[str] = []
    nodes = cockroach_nodes(compose)
    if len(nodes) != 3:
        return [f"expected three `cockroach start` services, found {sorted(nodes)}"]
    all_services = services(compose)
    images = {all_services[name]["image"] for name in nodes}
    if len(images) != 1:
        problems.append(f"the nodes run different images: {sorted(images)}")
    for image in images:
        problems += pinned_problems("cockroach", image)
    localities = {}
    for name, args in nodes.items():
        service = all_services[name]
        opts = flags(args)
        if service.get("hostname", name) != name:
            problems.append(f"{name}: hostname {service.get('hostname')!r} is not the service name")
        joined = opts.get("--join", "").split(",")
        if sorted(joined) != sorted(f"{node}:{SQL_PORT}" for node in nodes):
            problems.append(f"{name}: --join={opts.get('--join')!r} does not list the three nodes")
        if opts.get("--advertise-addr") != f"{name}:{SQL_PORT}":
            problems.append(f"{name}: --advertise-addr is {opts.get('--advertise-addr')!r}")
        if "--insecure" not in opts:
            problems.append(f"{name}: not --insecure, but the URLs and the init job are written for it")
        locality = dict(part.partition("=")[::2] for part in opts.get("--locality", "").split(",") if part)
        if not locality.get("region") or not locality.get("zone"):
            problems.append(f"{name}: --locality needs a region and a zone, got {opts.get('--locality')!r}")
        localities[name] = (locality.get("region"), locality.get("zone"))
        volumes = [str(v) for v in service.get("volumes") or []]
        if not any(v.split(":")[1:2] == ["/cockroach/cockroach-data"] for v in volumes):
            problems.append(f"{name}: no volume on /cockroach/cockroach-data")
        check = healthcheck_text(service) or ""
        if "/health?ready=1" not in check or f"localhost:{CONSOLE_PORT}" not in check:
            problems.append(f"{name}: health check does not ask /health?ready=1 on :{CONSOLE_PORT}: {check!r}")
        elif not re.search(r"(^|\s)(-[a-zA-Z]*f[a-zA-Z]*|--fail)(\s|$)", check):
            problems.append(f"{name}: the health check's curl must fail on an HTTP error (-f)")
    if len(set(localities.values())) != len(localities):
        problems.append(f"the nodes' localities are not distinct: {localities}")
    data_volumes = [tuple(str(v) for v in all_services[name].get("volumes") or []) for name in nodes]
    if len(set(data_volumes)) != len(data_volumes):
        problems.append("two nodes share a data volume")
    console = [name for name in nodes if published(all_services[name]).get(CONSOLE_PORT) == CONSOLE_PORT]
    sql = [name for name in nodes if published(all_services[name]).get(int(SQL_PORT)) == int(SQL_PORT)]
    if not console or not sql:
        problems.append(f"no node publishes the DB console on {CONSOLE_PORT} and SQL on {SQL_PORT}")
    return problems


def init_problems(compose: Compose) -> list[str]:
    nodes = cockroach_nodes(compose)
    inits = [(name, s) for name, s in services(compose).items()
             if str(s.get("image", "")).startswith(COCKROACH_IMAGE) and name not in nodes]
    if len(inits) != 1:
        return [f"expected one init service on the cockroach image, found {[n for n, _ in inits]}"]
    name, service = inits[0]
    problems: list[str] = []
    if service["image"] not in {services(compose)[n]["image"] for n in nodes}:
        problems.append(f"{name}: image {service['image']!r} is not the nodes' image")
    if service.get("restart", "no") != "no":
        problems.append(f"{name}: a one-shot job must not restart")
    script = " ".join(argv(service.get("entrypoint")) + argv(service.get("command")))
    init = re.search(r"cockroach init\b[^\n;|&]*", script)
    if init is None:
        problems.append(f"{name}: does not run `cockroach init`")
    else:
        opts = flags(shlex.split(init.group(0)))
        if "--insecure" not in opts:
            problems.append(f"{name}: `cockroach init` without --insecure")
        if opts.get("--host", "").partition(":")[0] not in nodes:
            problems.append(f"{name}: `cockroach init --host` is not a node: {opts.get('--host')!r}")
    if "already been initialized" not in script:
        problems.append(f"{name}: a second run fails: the 'already been initialized' answer is not tolerated")
    _api, api, _args = the_api(compose)
    dbname = psycopg.conninfo.conninfo_to_dict(environment(api).get("PAYSVC_DATABASE_URL", "")).get("dbname")
    if f"CREATE DATABASE IF NOT EXISTS {dbname}" not in script:
        problems.append(f"{name}: does not create the API's database {dbname!r}")
    if set(depends_on(service)) != set(nodes):
        problems.append(f"{name}: depends on {sorted(depends_on(service))}, not on the three nodes")
    entrypoint = argv(service.get("entrypoint"))
    if entrypoint[:1] == ["/bin/bash"] and shutil.which("bash"):
        body = argv(service.get("command"))
        result = subprocess.run(["bash", "-n", "-c", " ".join(body)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            problems.append(f"{name}: the script is not valid bash: {result.stderr.strip()}")
    return problems


def paysvc_problems(compose: Compose) -> list[str]:
    """Every service on the API image runs a real paysvc command; one applies the migrations, as a
    one-shot job after the init job, and the API starts after it."""
    problems: list[str] = []
    scripts = PYPROJECT["project"]["scripts"]
    if scripts.get("paysvc") != "paysvc.cli:main":
        problems.append("pyproject.toml does not install the `paysvc` command from paysvc.cli:main")
    migrators = []
    for name, service in services(compose).items():
        if not is_paysvc_image(service):
            continue
        dockerfile = COMPOSE_FILE.parent / str((service["build"] if isinstance(service["build"], dict)
                                                 else {}).get("dockerfile", "Dockerfile"))
        if dockerfile.resolve() != DOCKERFILE:
            problems.append(f"{name}: not built from the repository's Dockerfile")
        parsed, error = parse_paysvc(argv(service.get("command")))
        if error is not None:
            problems.append(f"{name}: {error}")
        elif parsed.command == "migrate":
            migrators.append(name)
    if len(migrators) != 1:
        return [*problems, f"expected one service running `paysvc migrate`, found {migrators}"]
    migrate = migrators[0]
    service = services(compose)[migrate]
    if service.get("restart", "no") != "no":
        problems.append(f"{migrate}: a one-shot job must not restart")
    init = [n for n, c in depends_on(service).items()
            if str(services(compose).get(n, {}).get("image", "")).startswith(COCKROACH_IMAGE)]
    if not init or depends_on(service)[init[0]] != "service_completed_successfully":
        problems.append(f"{migrate}: does not wait for the init job to complete successfully")
    try:
        api, _service, _args = the_api(compose)
    except AssertionError as exc:
        return [*problems, str(exc)]
    if depends_on(services(compose)[api]).get(migrate) != "service_completed_successfully":
        problems.append(f"{api}: does not wait for {migrate} to complete successfully")
    return problems


def database_url_problems(where: str, url: str, nodes: Mapping[str, list[str]]) -> list[str]:
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        return [f"{where}: PAYSVC_DATABASE_URL does not parse: {exc}"]
    problems: list[str] = []
    hosts = str(params.get("host", "")).split(",")
    ports = str(params.get("port", "")).split(",")
    if sorted(hosts) != sorted(nodes):
        problems.append(f"{where}: the URL lists hosts {hosts}, not the three nodes {sorted(nodes)}")
    if ports != [SQL_PORT] * len(hosts) and ports != [SQL_PORT]:
        problems.append(f"{where}: the URL's ports {ports} are not {SQL_PORT} for each host")
    if not params.get("dbname"):
        problems.append(f"{where}: the URL names no database")
    if any("--insecure" in flags(args) for args in nodes.values()) and params.get("sslmode") != "disable":
        problems.append(f"{where}: the nodes are --insecure (no TLS) but sslmode is {params.get('sslmode')!r}")
    if params.get("load_balance_hosts") != "random":
        problems.append(f"{where}: without load_balance_hosts=random every connection goes to the first node")
    if not params.get("connect_timeout"):
        problems.append(f"{where}: no connect_timeout, so a dead node stalls a new connection")
    return problems


def api_problems(compose: Compose) -> list[str]:
    name, service, args = the_api(compose)
    problems: list[str] = []
    if args.host != ALL_INTERFACES:
        problems.append(f"{name}: serves on {args.host}, unreachable from outside its container")
    if published(service).get(API_PORT) != args.port:
        problems.append(f"{name}: host port {API_PORT} is not published to the served port {args.port}")
    command = service.get("healthcheck", {}).get("test")
    if not healthcheck_text(service):
        problems.append(f"{name}: no health check")
    else:
        problems += python_check_problems(name, [str(c) for c in command], args.port)
    env = environment(service)
    problems += database_url_problems(name, env.get("PAYSVC_DATABASE_URL", ""), cockroach_nodes(compose))
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        problems.append(f"{name}: paysvc refuses its environment: {exc}")
    else:
        if settings.admin_token is None:
            problems.append(f"{name}: no PAYSVC_ADMIN_TOKEN: the admin API and the locust fixture cannot work")
    return problems


def locust_problems(compose: Compose) -> list[str]:
    problems: list[str] = []
    all_services = services(compose)
    profiled = {name: s.get("profiles") for name, s in all_services.items() if s.get("profiles")}
    locusts = [name for name, s in all_services.items() if str(s.get("image", "")).startswith(LOCUST_IMAGE)]
    if len(locusts) != 1:
        return [f"expected one locust service, found {locusts}"]
    name = locusts[0]
    if profiled != {name: ["loadtest"]}:
        problems.append(f"only {name} may have a profile, and only `loadtest`: {profiled}")
    service = all_services[name]
    problems += pinned_problems(name, service["image"])
    wanted = next(Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["loadtest"]
                  if Requirement(r).name == "locust")
    tag = image_tag(service["image"])[1]
    if re.fullmatch(r"\d+\.\d+\.\d+", tag) and Version(tag) not in wanted.specifier:
        problems.append(f"{name}: locust {tag} is outside the loadtest extra's {wanted}")
    if published(service).get(LOCUST_PORT) != LOCUST_PORT:
        problems.append(f"{name}: the web UI port {LOCUST_PORT} is not published")
    mounts = {}
    for volume in service.get("volumes") or []:
        source, _, rest = str(volume).partition(":")
        mounts[rest.split(":")[0]] = (COMPOSE_FILE.parent / source).resolve()
    args = argv(service.get("command"))
    locustfile = args[args.index("-f") + 1] if "-f" in args[:-1] else ""
    mounted = [(target, source) for target, source in mounts.items() if locustfile.startswith(target + "/")]
    if not mounted or not (mounted[0][1] / locustfile[len(mounted[0][0]) + 1:]).is_file():
        problems.append(f"{name}: the locustfile {locustfile!r} is not a file mounted from the repository")
    host = flags(args).get("--host", "")
    api, api_service, api_args = the_api(compose)
    if urlsplit(host).hostname != api or urlsplit(host).port != api_args.port:
        problems.append(f"{name}: --host {host!r} is not the API service at http://{api}:{api_args.port}")
    if environment(service).get("PAYSVC_ADMIN_TOKEN") != environment(api_service).get("PAYSVC_ADMIN_TOKEN"):
        problems.append(f"{name}: PAYSVC_ADMIN_TOKEN differs from the API's, so the fixture cannot create its tenant")
    if depends_on(service).get(api) != "service_healthy":
        problems.append(f"{name}: does not wait for the API to be healthy")
    return problems


def wiring_problems(compose: Compose) -> list[str]:
    problems: list[str] = []
    all_services = services(compose)
    for value in strings(compose):
        try:
            interpolate(value)
        except ValueError as exc:
            problems.append(str(exc))
    for name, service in all_services.items():
        for target, condition in depends_on(service).items():
            if target not in all_services or target == name:
                problems.append(f"{name}: depends on {target!r}, which is not another service")
                continue
            if condition not in {"service_started", "service_healthy", "service_completed_successfully"}:
                problems.append(f"{name}: unknown condition {condition!r}")
            if condition == "service_healthy" and not healthcheck_text(all_services[target]):
                problems.append(f"{name}: waits for {target} to be healthy, but {target} has no health check")
            if condition == "service_completed_successfully" and all_services[target].get("restart", "no") != "no":
                problems.append(f"{name}: waits for {target} to complete, but {target} restarts")
        if not service.get("image") and not service.get("build"):
            problems.append(f"{name}: neither an image nor a build")
        for volume in service.get("volumes") or []:
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/")) and source not in (compose.get("volumes") or {}):
                problems.append(f"{name}: volume {source!r} is not declared under volumes:")
            elif source.startswith(".") and not (COMPOSE_FILE.parent / source).exists():
                problems.append(f"{name}: mounts {source!r}, which is not in the repository")
    # No cycle in depends_on (Compose would refuse to start).
    state: dict[str, int] = {}

    def visit(name: str) -> bool:
        if state.get(name) == 1:
            return True
        if state.get(name) == 2 or name not in all_services:
            return False
        state[name] = 1
        cyclic = any(visit(t) for t in depends_on(all_services[name]))
        state[name] = 2
        return cyclic

    if any(visit(name) for name in all_services):
        problems.append("depends_on has a cycle")
    host_ports = [port for service in all_services.values() for port in published(service)]
    if len(host_ports) != len(set(host_ports)):
        problems.append(f"a host port is published twice: {sorted(host_ports)}")
    return problems


def environment_problems(compose: Compose) -> list[str]:
    """Every PAYSVC_* variable is a paysvc setting, or (for locust) an option documented in loadtest/."""
    documented = set(re.findall(r"PAYSVC_[A-Z0-9_]+", (ROOT / "loadtest" / "README.md").read_text(encoding="utf-8")))
    problems = []
    for name, service in services(compose).items():
        allowed = SETTINGS_VARS | (documented if str(service.get("image", "")).startswith(LOCUST_IMAGE) else set())
        for variable in environment(service):
            if variable.startswith(ENV_PREFIX) and variable not in allowed:
                problems.append(f"{name}: {variable} is not a paysvc setting (python/paysvc/config.py)")
    return problems


COMPOSE_CHECKS: list[Callable[[Compose], list[str]]] = [
    cockroach_problems, init_problems, paysvc_problems, api_problems, locust_problems, wiring_problems,
    environment_problems,
]


def compose_problems(compose: Compose) -> list[str]:
    problems: list[str] = []
    for check in COMPOSE_CHECKS:
        try:
            problems += check(compose)
        except (AssertionError, KeyError, ValueError, TypeError, IndexError) as exc:
            problems.append(f"{check.__name__}: {type(exc).__name__}: {exc}")
    return problems


# ---------------------------------------------------------------- Dockerfile and .dockerignore

Instruction = tuple[str, str]


def dockerfile_instructions(text: str) -> list[Instruction]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    found: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, rest = pending.partition(" ")
        found.append((keyword.upper(), rest.strip()))
        pending = ""
    if pending:
        keyword, _, rest = pending.partition(" ")
        found.append((keyword.upper(), rest.strip()))
    return found


def stages(instructions: list[Instruction]) -> tuple[dict[str, str], list[list[Instruction]]]:
    """The global ARG defaults, and the instructions of each stage (each starting with its FROM)."""
    global_args: dict[str, str] = {}
    split: list[list[Instruction]] = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            split.append([])
        if not split:
            if keyword == "ARG":
                name, _, default = rest.partition("=")
                global_args[name.strip()] = default.strip()
            continue
        split[-1].append((keyword, rest))
    return global_args, split


def expand(value: str, args: Mapping[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


def exec_form(where: str, value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(v, str) for v in parsed), f"{where} is not exec form"
    return parsed


def dockerignore_patterns(text: str) -> list[str]:
    return [line.strip().lstrip("/") for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (relative, with /) out of the build context: a pattern matches
    the path or one of its parent directories; a later ``!pattern`` lets it back in."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern[1:] if negate else pattern)
        if any(regex.fullmatch(c) for c in candidates):
            result = not negate
    return result


def tracked_files(under: str) -> list[str]:
    result = subprocess.run(["git", "ls-files", "-z", "--", under], cwd=ROOT, capture_output=True, check=False)
    if result.returncode != 0:  # not a git checkout: the files, less what git would ignore anyway
        local = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
        return [str(p.relative_to(ROOT)) for p in (ROOT / under).rglob("*")
                if p.is_file() and p.suffix not in {".so", ".pyc"} and not local & set(p.parts)]
    return [name for name in result.stdout.decode().split("\0") if name]


def dockerfile_problems(text: str, dockerignore: str) -> list[str]:
    problems: list[str] = []
    global_args, split = stages(dockerfile_instructions(text))
    if len(split) < 2:
        return [f"not a multi-stage build ({len(split)} FROM)"]
    bases = []
    for stage in split:
        base = expand(stage[0][1].split()[0], global_args)
        bases.append(base)
        problems += pinned_problems("Dockerfile FROM", base)
    build, final = split[0], split[-1]
    if len(set(bases)) != 1:
        problems.append(f"the stages use different base images {bases}: the extension is built for one Python")
    patterns = dockerignore_patterns(dockerignore)

    def run_text(stage: list[Instruction]) -> str:
        return "\n".join(rest for keyword, rest in stage if keyword == "RUN")

    # The build stage builds the wheel the way ./dev installs the package: pip + the pyproject backend.
    build_args = {**global_args, **{rest.partition("=")[0]: rest.partition("=")[2]
                                    for keyword, rest in build if keyword == "ARG"}}
    build_run = expand(run_text(build), build_args)
    if PYPROJECT["build-system"]["build-backend"] != "maturin":
        problems.append("pyproject.toml no longer builds with maturin")
    if PYPROJECT["tool"]["maturin"].get("locked") is not True:
        problems.append("pyproject.toml's [tool.maturin] is not locked = true: the wheel would not build --locked")
    if not re.search(r"pip wheel\b[^\n]*\s\.(\s|$)", build_run) and "maturin build" not in build_run:
        problems.append("the build stage does not build the wheel with `pip wheel .` or `maturin build`")
    if "--locked" not in build_run:
        problems.append("the build stage runs no cargo step with --locked (CI builds --locked)")
    if "--profile minimal" not in build_run:
        problems.append("rustup is not installed with --profile minimal")
    match = re.search(r"--default-toolchain\s+\"?([0-9.]+)", build_run)
    rust_version = tomllib.loads((ROOT / "rust" / "Cargo.toml").read_text(encoding="utf-8"))["package"]["rust-version"]
    if match is None:
        problems.append("the Rust toolchain is not pinned (--default-toolchain X.Y.Z)")
    elif version_of(match.group(1)) < version_of(rust_version):
        problems.append(f"Rust {match.group(1)} is older than rust/Cargo.toml's rust-version {rust_version}")
    # Every COPY from the context exists, is not ignored, and together they hold what the build reads.
    copied: list[str] = []
    for stage in split:
        for keyword, rest in stage:
            if keyword not in {"COPY", "ADD"}:
                continue
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            if "--from=" in rest:
                continue
            for source in words[:-1]:
                source = source.rstrip("/") or "."
                copied.append(source)
                if not (ROOT / source).exists():
                    problems.append(f"COPY {source}: not in the repository")
                elif ignored(source, patterns):
                    problems.append(f"COPY {source}: excluded by .dockerignore")
                else:
                    for tracked in tracked_files(source):
                        if ignored(tracked, patterns):
                            problems.append(f"COPY {source}: .dockerignore drops {tracked}, which the build needs")
    maturin = PYPROJECT["tool"]["maturin"]
    needed = {"pyproject.toml", "Cargo.toml", "Cargo.lock", str(PYPROJECT["project"]["readme"]),
              str(Path(maturin["manifest-path"]).parent), str(maturin["python-source"])}
    for need in sorted(needed):
        if not any(need == c or need.startswith(c + "/") or c == "." for c in copied):
            problems.append(f"the build needs {need}, which no COPY brings in")
    # The runtime stage: installs the built wheel, runs as a user that is not root, checks its health.
    if not any(keyword == "COPY" and f"--from={build[0][1].split()[-1]}" in rest for keyword, rest in final):
        problems.append("the final stage does not copy the wheel from the build stage")
    if not re.search(r"pip install\b[^\n]*\.whl", run_text(final)):
        problems.append("the final stage does not pip install the wheel")
    users = [rest.split(":")[0] for keyword, rest in final if keyword == "USER"]
    if not users or users[-1] in {"root", "0"}:
        problems.append(f"the final stage runs as root (USER {users[-1] if users else 'missing'})")
    elif not re.search(rf"useradd\b[^\n]*\s{re.escape(users[-1])}(\s|$)", run_text(final)):
        problems.append(f"USER {users[-1]}: the final stage never creates that user")
    cmds = [rest for keyword, rest in final if keyword == "CMD"]
    exposed = {int(p.split("/")[0]) for keyword, rest in final if keyword == "EXPOSE" for p in rest.split()}
    serve_port = API_PORT
    if not cmds:
        problems.append("no CMD")
    else:
        parsed, error = parse_paysvc(exec_form("CMD", cmds[-1]))
        if error is not None:
            problems.append(f"CMD: {error}")
        elif parsed.command != "serve" or parsed.host != ALL_INTERFACES:
            problems.append("CMD does not serve the API on 0.0.0.0")
        else:
            serve_port = parsed.port
            if serve_port not in exposed:
                problems.append(f"CMD serves on {serve_port}, EXPOSE says {sorted(exposed)}")
    checks = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    if not checks or checks[-1].strip().upper() == "NONE":
        problems.append("the final stage has no HEALTHCHECK")
    else:
        _options, _, command = checks[-1].partition("CMD ")
        problems += python_check_problems("HEALTHCHECK", exec_form("HEALTHCHECK", command.strip()), serve_port)
    return problems


# ---------------------------------------------------------------- the tests

def test_compose_file_has_no_problem() -> None:
    assert compose_problems(load_compose()) == []


def test_compose_runs_the_expected_services() -> None:
    compose = load_compose()
    assert set(cockroach_nodes(compose)) == {"roach1", "roach2", "roach3"}
    assert the_api(compose)[0] == "api"
    assert set(services(compose)) == {"roach1", "roach2", "roach3", "roach-init", "migrate", "api", "locust"}
    assert services(compose)["locust"]["profiles"] == ["loadtest"]


def test_api_database_url_lists_every_node() -> None:
    compose = load_compose()
    _name, api, _args = the_api(compose)
    params = psycopg.conninfo.conninfo_to_dict(environment(api)["PAYSVC_DATABASE_URL"])
    assert params["host"] == "roach1,roach2,roach3"
    assert params["port"] == "26257,26257,26257"
    assert params["dbname"] == "paysvc"
    assert params["target_session_attrs"] == "any"


def test_dockerfile_has_no_problem() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8"), DOCKERIGNORE.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", [
    ".git/HEAD", ".venv/bin/python", "target/release/lib_native.so", "bench-results/bench.json",
    "python/paysvc/_native.cpython-311-x86_64-linux-gnu.so", "python/paysvc/__pycache__/cli.cpython-311.pyc",
    ".env",
])
def test_dockerignore_keeps_local_build_output_and_secrets_out(path: str) -> None:
    assert ignored(path, dockerignore_patterns(DOCKERIGNORE.read_text(encoding="utf-8")))


def test_interpolate_follows_compose_rules() -> None:
    assert interpolate("echo $$out") == "echo $out"
    assert interpolate("${TOKEN:-abc}") == "abc"
    assert interpolate("${TOKEN:-abc}", {"TOKEN": "xyz"}) == "xyz"
    for bad in ("echo $out", "${TOKEN}", "$(date)"):
        with pytest.raises(ValueError):
            interpolate(bad)


# ---------------------------------------------------------------- each check catches a broken copy

def _node_command(compose: Compose, node: str, old: str, new: str) -> None:
    service = services(compose)[node]
    assert old in service["command"], f"{old!r} is not in {node}'s command any more: update this test"
    service["command"] = service["command"].replace(old, new)


def _api_env(compose: Compose, name: str, value: str) -> None:
    services(compose)["api"]["environment"][name] = value


def _init_script(compose: Compose, old: str, new: str) -> None:
    command = services(compose)["roach-init"]["command"]
    assert old in command[0], f"{old!r} is not in the init script any more: update this test"
    command[0] = command[0].replace(old, new)


COMPOSE_MUTATIONS: dict[str, Callable[[Compose], None]] = {
    "a node missing from --join": lambda c: _node_command(c, "roach1", "roach2:26257,roach3:26257", "roach2:26257"),
    "two nodes in one zone": lambda c: _node_command(c, "roach2", "zone=us-east1-b", "zone=us-east1-a"),
    "a node on :latest": lambda c: services(c)["roach3"].update(image="cockroachdb/cockroach:latest"),
    "a node without health check": lambda c: services(c)["roach2"].pop("healthcheck"),
    "health check on /health": lambda c: services(c)["roach1"].update(
        healthcheck={"test": ["CMD", "curl", "-f", "http://localhost:8080/health"]}),
    "a node without volume": lambda c: services(c)["roach3"].pop("volumes"),
    "only two nodes": lambda c: services(c).pop("roach3"),
    "no cockroach init": lambda c: _init_script(c, "cockroach init", "cockroach version"),
    "init fails when run twice": lambda c: _init_script(c, "already been initialized", "xyz"),
    "unescaped $ in the init script": lambda c: _init_script(c, "$$out", "$out"),
    "bash syntax error": lambda c: _init_script(c, "done\nfor", "don\nfor"),
    "a misspelled paysvc command": lambda c: services(c)["migrate"].update(command=["paysvc", "migrat"]),
    "an unknown serve flag": lambda c: services(c)["api"].update(
        command=["paysvc", "serve", "--bind", "0.0.0.0:8000"]),
    "API on 127.0.0.1": lambda c: services(c)["api"].update(command=["paysvc", "serve", "--port", "8000"]),
    "API port not published": lambda c: services(c)["api"].update(ports=["8001:8000"]),
    "API without health check": lambda c: services(c)["api"].pop("healthcheck"),
    "API health check on /healthz": lambda c: services(c)["api"]["healthcheck"].update(
        test=["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"]),
    "URL with one node": lambda c: _api_env(
        c, "PAYSVC_DATABASE_URL", "postgresql://root@roach1:26257/paysvc?sslmode=disable&load_balance_hosts=random"
        "&connect_timeout=5"),
    "URL without load balancing": lambda c: _api_env(
        c, "PAYSVC_DATABASE_URL", "postgresql://root@roach1:26257,roach2:26257,roach3:26257/paysvc?sslmode=disable"
        "&connect_timeout=5"),
    "a misspelled setting": lambda c: _api_env(c, "PAYSVC_POOLSIZE", "8"),
    "an admin token paysvc refuses": lambda c: _api_env(c, "PAYSVC_ADMIN_TOKEN", "short"),
    "API does not wait for the migration": lambda c: services(c)["api"].update(depends_on=["migrate"]),
    "migrate does not wait for init": lambda c: services(c)["migrate"].pop("depends_on"),
    "depends on a missing service": lambda c: services(c)["migrate"].update(
        depends_on={"roach-setup": {"condition": "service_completed_successfully"}}),
    "a dependency cycle": lambda c: services(c)["roach1"].update(depends_on=["api"]),
    "locust outside its profile": lambda c: services(c)["locust"].pop("profiles"),
    "another token for locust": lambda c: services(c)["locust"]["environment"].update(
        PAYSVC_ADMIN_TOKEN="another-admin-token-0123"),
    "a locustfile that is not there": lambda c: services(c)["locust"].update(
        command=["-f", "/mnt/locust/locust.py", "--host", "http://api:8000"]),
    "locust aimed at the wrong host": lambda c: services(c)["locust"].update(
        command=["-f", "/mnt/locust/locustfile.py", "--host", "http://127.0.0.1:8000"]),
    "a host port used twice": lambda c: services(c)["locust"].update(ports=["8000:8089"]),
    "an undeclared volume": lambda c: services(c)["roach2"].update(volumes=["roachtwo:/cockroach/cockroach-data"]),
}


@pytest.mark.parametrize("mutation", sorted(COMPOSE_MUTATIONS))
def test_compose_checks_catch(mutation: str) -> None:
    compose = copy.deepcopy(load_compose())
    COMPOSE_MUTATIONS[mutation](compose)
    assert compose_problems(compose) != [], f"nothing noticed {mutation}"


DOCKERFILE_MUTATIONS: dict[str, tuple[str, str]] = {
    "runs as root": ("USER paysvc", "USER root"),
    "no USER": ("USER paysvc\n", ""),
    "no HEALTHCHECK": ("HEALTHCHECK", "# HEALTHCHECK"),
    "a COPY of a missing file": ("COPY Cargo.toml Cargo.lock", "COPY Cargo.toml Cargo.lock rust-toolchain.toml"),
    "the lock file not copied": ("COPY Cargo.toml Cargo.lock", "COPY Cargo.toml"),
    "one stage": ("FROM ${PYTHON_IMAGE} AS runtime", "# one stage"),
    "another Python at run time": ("FROM ${PYTHON_IMAGE} AS runtime", "FROM python:3.13.9-slim-bookworm AS runtime"),
    "an unpinned base": ("ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm", "ARG PYTHON_IMAGE=python:latest"),
    "not --locked": ("cargo fetch --locked", "cargo fetch"),
    "an old Rust": ("RUST_TOOLCHAIN=1.95.0", "RUST_TOOLCHAIN=1.70.0"),
    "CMD on localhost": ('"--host", "0.0.0.0", ', ""),
    "a wrong paysvc command": ('CMD ["paysvc", "serve"', 'CMD ["paysvc", "server"'),
}


@pytest.mark.parametrize("mutation", sorted(DOCKERFILE_MUTATIONS))
def test_dockerfile_checks_catch(mutation: str) -> None:
    old, new = DOCKERFILE_MUTATIONS[mutation]
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in the Dockerfile any more: update this test"
    assert dockerfile_problems(text.replace(old, new), DOCKERIGNORE.read_text(encoding="utf-8")) != []


def test_dockerignore_dropping_what_the_build_needs_is_caught() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    # Docker matches `*.sql` at the top of the context only, `**/*.sql` everywhere (the migrations).
    patterns = dockerignore_patterns(DOCKERIGNORE.read_text(encoding="utf-8"))
    assert not ignored("python/paysvc/db/migrations/0001_init.sql", [*patterns, "*.sql"])
    assert dockerfile_problems(text, DOCKERIGNORE.read_text(encoding="utf-8") + "\n**/*.sql\n") != []
    assert dockerfile_problems(text, DOCKERIGNORE.read_text(encoding="utf-8") + "\nREADME.md\n") != []
