"""Accounts: create, get, list, and an account's ledger entries."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from paysvc import _native, reads
from paysvc.api.common import (
    IDEMPOTENT_WRITE_ERRORS,
    READ_ERRORS,
    EngineDep,
    IdempotencyKey,
    Limit,
    ReadConsistency,
    ReadConsistencyOperation,
    StartingAfter,
    TenantDep,
    json_response,
    outcome_response,
    read_response,
)
from paysvc.api.decode import decode_body
from paysvc.api.schemas import AccountCreate
from paysvc.errors import from_core
from paysvc.resources import Account, AccountList, EntryList


class AccountController(Controller):
    path = "/v1/accounts"
    tags = ["accounts"]

    @post(
        "/",
        status_code=201,
        summary="Create an account",
        opt={"request_body": AccountCreate},
        responses={201: ResponseSpec(Account, description="The new account"), **IDEMPOTENT_WRITE_ERRORS},
    )
    async def create(
        self, request: Request[Any, Any, Any], tenant: TenantDep, engine: EngineDep,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        body = decode_body(await request.body(), AccountCreate)
        try:
            plan = _native.prepare_account(
                currency=body.currency,
                allow_negative=body.allow_negative,
                metadata=body.metadata,
                idempotency_key=idempotency_key,
            )
        except _native.CoreError as exc:
            raise from_core(exc) from None
        return outcome_response(await engine.create_account(tenant, plan, idempotency_key))

    @get(
        "/{account_id:str}",
        summary="Retrieve an account with its balance",
        description="Current by default; Paysvc-Read-Consistency: stale may answer a balance a few seconds old.",
        responses={200: ResponseSpec(Account, description="The account"), **READ_ERRORS},
        operation_class=ReadConsistencyOperation,
    )
    async def retrieve(
        self, account_id: FromPath[str], tenant: TenantDep, engine: EngineDep,
        read_consistency: ReadConsistency = reads.CURRENT,
    ) -> Response[bytes]:
        return read_response(*await reads.get_account(engine.pool, tenant.id, account_id, read_consistency))

    @get(
        "/",
        summary="List accounts, newest first",
        responses={200: ResponseSpec(AccountList, description="A page of accounts"), **READ_ERRORS},
    )
    async def list_accounts(
        self, tenant: TenantDep, engine: EngineDep, limit: Limit = 10, starting_after: StartingAfter = None
    ) -> Response[bytes]:
        return json_response(await reads.list_accounts(engine.pool, tenant.id, limit, starting_after))

    @get(
        "/{account_id:str}/entries",
        summary="List an account's ledger entries, newest first (by the account's seq)",
        responses={200: ResponseSpec(EntryList, description="A page of entries"), **READ_ERRORS},
    )
    async def entries(
        self, account_id: FromPath[str], tenant: TenantDep, engine: EngineDep,
        limit: Limit = 10, starting_after: StartingAfter = None,
    ) -> Response[bytes]:
        return json_response(await reads.list_entries(engine.pool, tenant.id, account_id, limit, starting_after))
