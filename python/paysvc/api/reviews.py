"""Reviews (brief section 8): opened by `review` rules; closed by approval, refund or cancel."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from paysvc import reads
from paysvc.api.common import READ_ERRORS, TRANSITION_ERRORS, EngineDep, Limit, StartingAfter, TenantDep, json_response
from paysvc.resources import Review, ReviewList
from paysvc.risk import store


class ReviewController(Controller):
    path = "/v1/reviews"
    tags = ["risk"]

    @get("/", summary="List reviews, newest first",
         responses={200: ResponseSpec(ReviewList, description="A page of reviews"), **READ_ERRORS})
    async def list_reviews(
        self, tenant: TenantDep, engine: EngineDep, limit: Limit = 10, starting_after: StartingAfter = None,
        is_open: Annotated[
            bool | None, QueryParameter(name="open", description="Only open (true) or closed (false) reviews.")
        ] = None,
    ) -> Response[bytes]:
        return json_response(await reads.list_reviews(engine.pool, tenant.id, limit, starting_after, is_open))

    @get("/{review_id:str}", summary="Retrieve a review",
         responses={200: ResponseSpec(Review, description="The review"), **READ_ERRORS})
    async def retrieve(self, review_id: FromPath[str], tenant: TenantDep, engine: EngineDep) -> Response[bytes]:
        return json_response(await reads.get_review(engine.pool, tenant.id, review_id))

    @post("/{review_id:str}/approve", status_code=200, summary="Approve an open review (closes it as approved)",
          responses={200: ResponseSpec(Review, description="The review, closed"), **TRANSITION_ERRORS})
    async def approve(self, review_id: FromPath[str], tenant: TenantDep, engine: EngineDep) -> Response[bytes]:
        return json_response(await store.approve_review(engine.pool, engine.config.retry, tenant.id, review_id))
