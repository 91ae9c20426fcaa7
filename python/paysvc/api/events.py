"""The events feed: every state change of the tenant's payments and refunds, oldest first."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter

from paysvc import reads
from paysvc.api.common import READ_ERRORS, EngineDep, Limit, StartingAfter, TenantDep, json_response
from paysvc.resources import EventListDoc, EventType


class EventController(Controller):
    path = "/v1/events"
    tags = ["events"]

    @get(
        "/",
        summary="List events in commit order, oldest first; tail the feed with starting_after",
        description=(
            "Every event appears exactly once, after every event that committed before it: a consumer "
            "that passes the id of the last event it saw as starting_after never misses one."
        ),
        responses={200: ResponseSpec(EventListDoc, description="A page of events"), **READ_ERRORS},
    )
    async def list_events(
        self, tenant: TenantDep, engine: EngineDep, limit: Limit = 10, starting_after: StartingAfter = None,
        event_type: Annotated[
            EventType | None, QueryParameter(name="type", description="Only events of this type.")
        ] = None,
    ) -> Response[bytes]:
        await engine.sequence_events(tenant.id)
        return json_response(await reads.list_events(engine.pool, tenant.id, limit, starting_after, event_type))
