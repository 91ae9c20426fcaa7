"""API keys: ``paysvc key create/list/revoke`` run as the operator would (a subprocess against the
test database), revocation applying on the very next request, and keys checked exactly."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import httpx

from conftest import Api, RunningServer, db_rows
from paysvc import admin, ids


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


async def paysvc(app_server: RunningServer, *args: str) -> Run:
    env = {**os.environ, "PAYSVC_DATABASE_URL": app_server.database_url}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "paysvc.cli", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


async def create_key(app_server: RunningServer, tenant_id: str) -> str:
    run = await paysvc(app_server, "key", "create", tenant_id)
    assert run.code == 0, run.stderr
    (created,) = run.lines()
    assert list(created) == ["tenant", "api_key", "prefix"]
    assert created["tenant"] == tenant_id
    key: str = created["api_key"]
    assert key.startswith("sk_") and len(key) == len(admin.new_api_key())
    assert created["prefix"] == key[: admin.KEY_PREFIX_SHOWN]
    return key


async def status_with(http: httpx.AsyncClient, key: str) -> tuple[int, str | None]:
    r = await http.get("/v1/accounts", headers={"Authorization": f"Bearer {key}"})
    code = r.json()["error"]["code"] if r.status_code >= 400 else None
    return r.status_code, code


async def test_second_key_list_and_revoke_by_prefix(app_server: RunningServer, http: httpx.AsyncClient,
                                                    api: Api) -> None:
    first = api.key
    second = await create_key(app_server, api.tenant_id)
    assert second != first

    # Both keys are the same tenant's.
    account = await api.account()
    second_api = Api(http, second, api.tenant_id)
    assert account["id"] in {a["id"] for a in (await second_api.get("/v1/accounts", limit=100)).json()["data"]}
    assert await status_with(http, first) == (200, None)

    listed = await paysvc(app_server, "key", "list", api.tenant_id)
    assert listed.code == 0, listed.stderr
    rows = listed.lines()
    assert [list(row) for row in rows] == [["prefix", "created_at", "revoked_at"]] * 2
    assert {row["prefix"] for row in rows} == {first[:11], second[:11]}
    assert all(row["revoked_at"] is None and row["created_at"].endswith("Z") for row in rows)
    for secret in (first, second, admin.hash_key(first).hex(), admin.hash_key(second).hex()):
        assert secret not in listed.stdout and secret not in listed.stderr
        assert secret[11:] not in listed.stdout

    revoked = await paysvc(app_server, "key", "revoke", first[:11])
    assert revoked.code == 0, revoked.stderr
    (line,) = revoked.lines()
    assert list(line) == ["prefix", "revoked_at"] and line["prefix"] == first[:11]
    # The very next request with the revoked key is refused; the other key still works.
    assert await status_with(http, first) == (401, "api_key_invalid")
    assert await status_with(http, second) == (200, None)

    rows = (await paysvc(app_server, "key", "list", api.tenant_id)).lines()
    by_prefix = {row["prefix"]: row for row in rows}
    assert by_prefix[first[:11]]["revoked_at"] == line["revoked_at"]
    assert by_prefix[second[:11]]["revoked_at"] is None

    # Revoking it again: no active key has that prefix any more.
    again = await paysvc(app_server, "key", "revoke", first[:11])
    assert again.code == 2 and "no active key" in again.stderr and not again.stdout


async def test_revoke_by_full_key(app_server: RunningServer, http: httpx.AsyncClient, api: Api) -> None:
    extra = await create_key(app_server, api.tenant_id)
    assert await status_with(http, extra) == (200, None)
    revoked = await paysvc(app_server, "key", "revoke", extra)
    assert revoked.code == 0, revoked.stderr
    assert revoked.lines()[0]["prefix"] == extra[:11]
    assert extra not in revoked.stdout + revoked.stderr
    assert await status_with(http, extra) == (401, "api_key_invalid")
    assert await status_with(http, api.key) == (200, None)

    again = await paysvc(app_server, "key", "revoke", extra)
    assert again.code == 2 and "already revoked" in again.stderr
    assert extra not in again.stderr


async def test_unknown_and_ambiguous_prefixes_are_refused(app_server: RunningServer, http: httpx.AsyncClient,
                                                          api: Api) -> None:
    unknown = await paysvc(app_server, "key", "revoke", "sk_" + "Z" * 8)
    assert unknown.code == 2 and "no active key" in unknown.stderr and not unknown.stdout
    unknown_key = await paysvc(app_server, "key", "revoke", admin.new_api_key())
    assert unknown_key.code == 2 and "no such" in unknown_key.stderr
    for junk in ("", "sk_", "abc", "pk_12345678", "sk_1234"):
        run = await paysvc(app_server, "key", "revoke", junk)
        assert run.code == 2 and run.stderr and not run.stdout, junk

    # Two active keys sharing the displayed prefix (48 random bits make this rare, not impossible).
    prefix = api.key[:11]
    db_rows(app_server.database_url,
            "INSERT INTO api_keys (key_hash, tenant_id, key_prefix) VALUES (%s, %s, %s) RETURNING key_prefix",
            (secrets.token_bytes(32), ids.decode(ids.TENANT, api.tenant_id), prefix))
    ambiguous = await paysvc(app_server, "key", "revoke", prefix)
    assert ambiguous.code == 2 and "2 active keys" in ambiguous.stderr and not ambiguous.stdout
    assert await status_with(http, api.key) == (200, None)  # nothing was revoked
    # The full key still picks exactly one.
    assert (await paysvc(app_server, "key", "revoke", api.key)).code == 0
    assert await status_with(http, api.key) == (401, "api_key_invalid")


async def test_create_and_list_need_an_existing_tenant(app_server: RunningServer) -> None:
    missing = ids.encode(ids.TENANT, ids.new_uuid())
    for command in ("create", "list"):
        for tenant in (missing, "ten_nothex", "acct_" + "0" * 32, ""):
            run = await paysvc(app_server, "key", command, tenant)
            assert run.code == 2 and run.stderr.startswith("paysvc: ") and not run.stdout, (command, tenant)


def _flip(key: str, at: int) -> str:
    replacement = "A" if key[at] != "A" else "B"
    return key[:at] + replacement + key[at + 1:]


async def test_a_key_off_by_one_character_is_invalid(http: httpx.AsyncClient, api: Api) -> None:
    assert await status_with(http, api.key) == (200, None)
    for at in (len(api.key) - 1, len(api.key) // 2, admin.KEY_PREFIX_SHOWN):
        assert await status_with(http, _flip(api.key, at)) == (401, "api_key_invalid"), at
    for wrong in (api.key[:-1], api.key + "x", api.key.upper(), "pk_" + api.key[3:], api.key[3:],
                  "sk_" + "a" * 300, api.key + "a" * 200):
        assert await status_with(http, wrong) == (401, "api_key_invalid"), wrong


class _NoPool:
    def connection(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a malformed key must be refused before the database is asked")


class _FakeRequest:
    def __init__(self, token: str) -> None:
        self.headers = {"authorization": f"Bearer {token}"}
        self.app = type("App", (), {"state": type("State", (), {"pool": _NoPool()})()})()


async def test_malformed_keys_never_reach_the_database() -> None:
    from paysvc.api.auth import provide_tenant
    from paysvc.errors import ApiError

    for token in ("nope", "pk_" + "a" * 43, "sk_" + "a" * 198, "Sk_" + "a" * 43):
        try:
            await provide_tenant(_FakeRequest(token))  # type: ignore[arg-type]
        except ApiError as exc:
            assert exc.code == "api_key_invalid", token
        else:
            raise AssertionError(f"{token!r} was accepted")
