"""A FastAPI service in the shape the README recommends, ready to copy.

- The lifespan creates one ``NimClient`` inside the running event loop and
  closes it on shutdown; a dependency hands it to the routes.
- Handlers fail fast: the client view waits at most ``MAX_WAIT`` seconds for a
  rate-limit slot, then answers 429 with ``Retry-After`` instead of hanging.
- One error mapping for every route: ``InvalidRequest`` → 422,
  ``RateLimited`` / ``SlotTimeout`` → 429 with ``Retry-After``,
  ``NimConnectionError`` → 503, any other ``NimAPIError`` → 502.

Run: ``NIM_APP_KEY=... NIM_APP_SECRET=... uvicorn examples.fastapi_app:app``.
With several workers, give them one budget: ``limiter=nim.RedisLimiter(url)``
(see the README's FastAPI section).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import nim_async as nim

MAX_WAIT = 2.0  # seconds a request may wait for a rate-limit slot


class Notify(BaseModel):
    sender: str
    to: str
    text: str


class Batch(BaseModel):
    sender: str
    to: list[str]
    text: str


class Recall(BaseModel):
    sender: str
    to: str
    msgid: int
    timetag: int


def create_app(
    *,
    base_url: str | None = None,
    rate_limits: nim.RateLimits | None = nim.RateLimits.default(),  # noqa: B008 - immutable
    limiter: nim.Limiter | None = None,
) -> FastAPI:
    """Build the service; credentials from NIM_APP_KEY / NIM_APP_SECRET, URL from NIM_BASE_URL."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with nim.NimClient(
            os.environ["NIM_APP_KEY"],
            os.environ["NIM_APP_SECRET"],
            base_url=base_url or os.environ.get("NIM_BASE_URL", nim.CHINA_URL),
            rate_limits=rate_limits,
            limiter=limiter,
        ) as client:
            app.state.nim = client.with_options(max_wait=MAX_WAIT)
            yield

    app = FastAPI(lifespan=lifespan)
    install_error_mapping(app)

    @app.post("/notify")
    async def notify(body: Notify, client: NimDependency) -> dict[str, int]:
        sent = await client.send_msg(body.sender, body.to, nim.Text(body.text))
        return {"msgid": sent.msgid, "timetag": sent.timetag}

    @app.post("/batch")
    async def batch(body: Batch, client: NimDependency) -> dict[str, Any]:
        result = await client.send_batch_msg(body.sender, body.to, nim.Text(body.text))
        return {
            "accepted": result.accepted,
            "unregister": result.unregister,
            "resendable": result.resendable(),
            "maybe_sent": [a for c in result.failed if c.may_have_been_sent for a in c.accids],
        }

    @app.post("/recall")
    async def recall(body: Recall, client: NimDependency) -> dict[str, bool]:
        await client.recall(body.msgid, body.timetag, from_=body.sender, to=body.to)
        return {"recalled": True}

    return app


def nim_client(request: Request) -> nim.NimClient:
    """The dependency: the client the lifespan created."""
    client: nim.NimClient = request.app.state.nim
    return client


NimDependency = Annotated[nim.NimClient, Depends(nim_client)]


def install_error_mapping(app: FastAPI) -> None:
    """Map nim_async's errors to HTTP answers: a recipe to copy."""

    @app.exception_handler(nim.InvalidRequest)
    async def invalid(request: Request, error: nim.InvalidRequest) -> JSONResponse:
        return JSONResponse({"error": str(error), "parameter": error.parameter}, status_code=422)

    @app.exception_handler(nim.SlotTimeout)
    async def busy(request: Request, error: nim.SlotTimeout) -> JSONResponse:
        headers = {"Retry-After": str(max(1, round(error.retry_after)))}
        return JSONResponse({"error": str(error)}, status_code=429, headers=headers)

    @app.exception_handler(nim.RateLimited)
    async def blocked(request: Request, error: nim.RateLimited) -> JSONResponse:
        # The server blocked the action for its block time (10 s or 60 s by default).
        after = 10 if error.retry_after is None else max(1, round(error.retry_after))
        return JSONResponse(
            {"error": str(error)}, status_code=429, headers={"Retry-After": str(after)}
        )

    @app.exception_handler(nim.NimConnectionError)
    async def unreachable(request: Request, error: nim.NimConnectionError) -> JSONResponse:
        answer = {"error": str(error), "may_have_reached_server": error.may_have_reached_server}
        return JSONResponse(answer, status_code=503)

    @app.exception_handler(nim.NimAPIError)
    async def upstream(request: Request, error: nim.NimAPIError) -> JSONResponse:
        answer = {"error": str(error), "code": error.code}
        return JSONResponse(answer, status_code=502)


app = create_app() if "NIM_APP_KEY" in os.environ else None
