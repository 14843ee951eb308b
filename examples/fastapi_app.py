"""A FastAPI service that sends NIM messages and receives NIM's message copies: ready to copy.

- Settings come from the environment, checked at startup: without ``NIM_APP_KEY``
  or ``NIM_APP_SECRET`` the service refuses to start and names the variable.
- The lifespan creates one ``NimClient`` inside the running event loop and
  closes it on shutdown; a dependency hands the routes a view of it that waits
  at most ``MAX_WAIT`` seconds for a rate-limit slot (bulk chunks included), so
  a spent budget is answered 429 at once instead of holding the request.
- ``/nim/callback`` receives NIM's message copies (抄送), verified by
  ``nim.callback_dependency`` and deduplicated by ``nim.callback_id``.
- Every answer that is not 2xx has one shape, FastAPI's own 404/405/422 included::

    {"error": {"code": "rate_limited", "message": "...", "field": null, ...}}

  ``code`` is stable (branch on it); ``message`` is for people; ``field`` names
  the request's field at fault (``sender``, ``to``, ``text``, ``msgid``,
  ``timetag``), or is null.

The errors, as ``status code``: when → what the caller should do.

- 422 ``invalid_request``: a field is missing, of the wrong type, or breaks a
  limit, this service's (at most ``MAX_BATCH_RECIPIENTS`` per ``/batch``) or
  NIM's, checked before sending (an accid of 1 to 32 characters, a text within
  NIM's length) → fix ``field``: the same request fails again. Nothing was sent.
- 422 ``unknown_account``: NIM does not know an account: the sender of
  ``/batch`` (recipients it does not know come back in ``unregister``), the
  sender or recipient of ``/notify`` and ``/recall``; ``field`` is null when
  NIM's answer does not say which → register the account or fix ``field``.
  Nothing was sent.
- 409 ``recall_expired``: ``/recall`` of a message older than NIM's recall
  window → do not retry.
- 429 ``rate_limited``: the app's NIM budget for the action has no slot within
  ``MAX_WAIT`` seconds, or NIM is blocking the action after a burst → retry
  after ``Retry-After`` seconds, the real wait rounded up. Nothing was sent.
- 502 ``upstream_error``: NIM answered an error the caller cannot fix (a server
  error, a refused permission or signature); ``nim_code`` is NIM's code →
  ``may_have_been_carried_out`` false: retry later; true: the message may have
  gone out, check before resending.
- 503 ``upstream_unavailable``: NIM could not be reached, the request never
  left (``may_have_reached_server``: false) → retry later.
- 504 ``upstream_timeout``: the request went out but no answer came back
  (``may_have_reached_server``: true) → do not retry blindly: the message may
  have gone out.
- 503 ``service_unavailable``: this service cannot send now (its shared rate
  limiter is down, or it is shutting down) → retry later. Nothing was sent.
- 401 ``unauthorized``: ``/nim/callback`` got a request not proven to be NIM's;
  the same answer whatever the reason, which goes to the log (WARNING, logger
  ``nim_async``) → nothing to do for NIM; a forger learns nothing.
- 400 ``bad_request``: ``/nim/callback`` got a body NIM signed that is not a
  JSON object.
- 404 ``not_found``, 405 ``method_not_allowed``: no such route or method.
- 500 ``internal_error``: a bug in this service (logged) → report it.

``/batch`` sends up to ``MAX_BATCH_RECIPIENTS`` recipients in chunks. Its 200
answer is the outcome: ``accepted`` (a count), ``unregister`` (recipients NIM
does not know), ``resendable`` (recipients of failed chunks that surely were not
sent: send them again) and ``maybe_sent`` (recipients of chunks that may have
gone out: check before resending). When an error stops the job early (an
unknown sender, a spent budget, ...) it answers that error's status and code
instead, with the same outcome under ``error.outcome``.

Run::

    NIM_APP_KEY=... NIM_APP_SECRET=... uvicorn examples.fastapi_app:app

``NIM_BASE_URL`` picks another NIM host (default: ``nim.CHINA_URL``). With
several workers, give them one budget: ``create_app(limiter=nim.RedisLimiter(url))``.
Tests build the app with explicit settings: ``create_app(Settings(key, secret, url))``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

import nim_async as nim

logger = logging.getLogger(__name__)

MAX_WAIT = 2.0  # seconds a request may wait for a rate-limit slot before answering 429
MAX_BATCH_RECIPIENTS = 10_000  # per /batch request: 20 of the 120 batch calls a minute allows
SEEN_CALLBACKS = 100_000  # message-copy ids remembered for deduplication, per process

# NIM's parameter (InvalidRequest.parameter, and the start of some NIM answers) → this
# service's field. sendMsg and recall name the parties from/to, sendBatchMsg
# fromAccid/toAccids; the text travels in body; recall finds the message by deleteMsgid.
REQUEST_FIELD = {
    "from": "sender",
    "fromAccid": "sender",
    "to": "to",
    "toAccids": "to",
    "body": "text",
    "deleteMsgid": "msgid",
    "timetag": "timetag",
}


class SettingsError(RuntimeError):
    """A setting the service cannot start without is missing."""


@dataclass(frozen=True)
class Settings:
    """The NIM app's credentials and host."""

    app_key: str
    app_secret: str = field(repr=False)
    base_url: str = nim.CHINA_URL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Read ``NIM_APP_KEY``, ``NIM_APP_SECRET`` and ``NIM_BASE_URL``.

        Raises:
            SettingsError: A credential is unset or empty; the message names it.
        """
        missing = [name for name in ("NIM_APP_KEY", "NIM_APP_SECRET") if not environ.get(name)]
        if missing:
            raise SettingsError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: "
                "set NIM_APP_KEY and NIM_APP_SECRET to the App Key and App Secret of the "
                "NIM app (NetEase IM console)"
            )
        return cls(
            environ["NIM_APP_KEY"],
            environ["NIM_APP_SECRET"],
            environ.get("NIM_BASE_URL") or nim.CHINA_URL,
        )


class Notify(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo ("from") is named, not ignored

    sender: str
    to: str
    text: str


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sender: str
    # Bounded: one request may not spend the app's whole batch budget (120 calls a minute).
    to: Annotated[list[str], Field(min_length=1, max_length=MAX_BATCH_RECIPIENTS)]
    text: str


class Recall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sender: str
    to: str
    msgid: int
    timetag: int


class BatchStopped(Exception):
    """A bulk send stopped early: every later chunk would have met ``error``."""

    def __init__(self, error: nim.NimError, result: nim.BatchResult) -> None:
        super().__init__(str(error))
        self.error = error
        self.result = result


def create_app(
    settings: Settings | None = None,
    *,
    rate_limits: nim.RateLimits | None = nim.RateLimits.default(),  # noqa: B008 - immutable
    limiter: nim.Limiter | None = None,
    max_wait: float = MAX_WAIT,
) -> FastAPI:
    """Build the service.

    Args:
        settings: Credentials and host; None reads them from the environment.
        rate_limits: The app's NIM budget (a bigger plan: ``with_action``).
        limiter: Where the budget lives; ``nim.RedisLimiter`` to share it between workers.
        max_wait: The longest a request waits for a rate-limit slot.

    Raises:
        SettingsError: ``settings`` is None and a credential is not in the environment.
    """
    settings = Settings.from_env() if settings is None else settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with nim.NimClient(
            settings.app_key,
            settings.app_secret,
            base_url=settings.base_url,
            rate_limits=rate_limits,
            limiter=limiter,
        ) as client:
            # Fail fast: no call, nor any chunk of a bulk send, waits longer for its slot.
            app.state.nim = client.with_options(max_wait=max_wait)
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
        if result.stopped is not None:
            raise BatchStopped(result.stopped, result)
        return batch_outcome(result)

    @app.post("/recall")
    async def recall(body: Recall, client: NimDependency) -> dict[str, bool]:
        await client.recall(body.msgid, body.timetag, from_=body.sender, to=body.to)
        return {"recalled": True}

    app.state.verify_callback = nim.callback_dependency(
        settings.app_secret, app_key=settings.app_key
    )
    # NIM delivers a copy again when it misses our answer: remember the ids seen.
    # With several workers, use a store they share (Redis SET NX with a TTL).
    seen: dict[str, None] = {}

    @app.post("/nim/callback")
    async def nim_callback(event: NimEvent) -> dict[str, int]:
        key = nim.callback_id(event)
        if key is not None:
            if key in seen:
                return {"code": 200}
            seen[key] = None
            if len(seen) > SEEN_CALLBACKS:
                del seen[next(iter(seen))]  # the oldest
        # Your handling goes here; keep it short: NIM waits 5 s for the answer.
        logger.info(
            "message copy: eventType=%s msgidServer=%s from=%s to=%s",
            event.get("eventType"),
            key,
            event.get("fromAccount"),
            event.get("to"),
        )
        return {"code": 200}

    return app


def nim_client(request: Request) -> nim.NimClient:
    """The dependency: the fail-fast client view the lifespan created."""
    client: nim.NimClient = request.app.state.nim
    return client


NimDependency = Annotated[nim.NimClient, Depends(nim_client)]


async def nim_event(request: Request) -> dict[str, Any]:
    """The dependency: the verified message-copy event (401 if NIM did not sign it)."""
    event: dict[str, Any] = await request.app.state.verify_callback(request)
    return event


NimEvent = Annotated[dict[str, Any], Depends(nim_event)]


def batch_outcome(result: nim.BatchResult) -> dict[str, Any]:
    """Where each recipient of a bulk send ended, as the caller can act on it."""
    return {
        "accepted": result.accepted,
        "unregister": result.unregister,
        "resendable": result.resendable(),
        "maybe_sent": [a for c in result.failed if c.may_have_been_sent for a in c.accids],
    }


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """The one error shape: ``{"error": {"code", "message", "field", ...extra}}``."""
    body = {"error": {"code": code, "message": message, "field": field, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


def retry_after(error: nim.SlotTimeout | nim.RateLimited) -> int:
    """The limiter's real wait in whole seconds, rounded up (earlier would be refused again)."""
    seconds = error.retry_after
    if seconds is None:  # a 416 the client could not time: the longest send block, a minute
        seconds = 60.0
    return max(1, math.ceil(seconds))


def unknown_account_field(error: nim.NotFound) -> str | None:
    """The request field of the account NIM does not know, or None when it cannot be told."""
    # A batch call answers unknown recipients in `unregister`: its 404 is the sender's.
    if error.action == "msg/sendBatchMsg":
        return "sender"
    # NIM's answer has no field for which account is missing; trust its desc only
    # when it opens with a parameter of the call ("to: account ... does not exist").
    first = re.match(r"\s*(\w+)", error.desc)
    return REQUEST_FIELD.get(first.group(1)) if first else None


def nim_error_response(error: nim.NimError, **extra: Any) -> JSONResponse:
    """Map a nim_async error to what the caller can act on (the table in the docstring).

    No exception text reaches the caller: it may hold internals (a URL, a host, a
    library's repr). Upstream failures are logged in full instead.
    """
    if isinstance(error, nim.InvalidRequest):
        name = REQUEST_FIELD.get(error.parameter)
        got = "" if error.actual is None else f" (got {error.actual})"
        what = name or "the request"
        message = f"{what} breaks NIM's limit: {error.limit}{got}"
        return error_response(422, "invalid_request", message, field=name, **extra)
    if isinstance(error, nim.NotFound):
        name = unknown_account_field(error)
        what = f"the account in {name}" if name else "the sender or the recipient"
        message = f"NIM does not know {what}; nothing was sent"
        return error_response(422, "unknown_account", message, field=name, **extra)
    if isinstance(error, nim.RecallExpired):
        message = "the message is older than NIM's recall window"
        return error_response(409, "recall_expired", message, field="msgid", **extra)
    if isinstance(error, nim.SlotTimeout | nim.RateLimited):
        wait = retry_after(error)
        message = f"NIM's rate limit for this action is spent; nothing was sent. Retry in {wait} s"
        return error_response(
            429, "rate_limited", message, headers={"Retry-After": str(wait)}, **extra
        )
    if isinstance(error, nim.NimAPIError):
        logger.warning("NIM answered an error: %s", error)
        carried_out = error.may_have_been_carried_out
        message = f"NIM answered code {error.code}; " + (
            "the request may have been carried out: check before retrying"
            if carried_out
            else "nothing was carried out"
        )
        return error_response(
            502,
            "upstream_error",
            message,
            nim_code=error.code,
            may_have_been_carried_out=carried_out,
            **extra,
        )
    if isinstance(error, nim.NimConnectionError):
        logger.warning("NIM did not answer: %s", error)
        if error.may_have_reached_server:
            message = "NIM did not answer; the request may have been carried out: check first"
            status, code = 504, "upstream_timeout"
        else:
            message = "NIM could not be reached; nothing was sent"
            status, code = 503, "upstream_unavailable"
        return error_response(
            status, code, message, may_have_reached_server=error.may_have_reached_server, **extra
        )
    if isinstance(error, nim.LimiterUnavailable | nim.ClientStateError):
        logger.warning("cannot send now: %s", error)
        message = "the service cannot send now; nothing was sent"
        return error_response(503, "service_unavailable", message, **extra)
    logger.error("unexpected error from nim_async: %r", error)
    return error_response(500, "internal_error", "internal error", **extra)


_PHRASES = {status.value: status.phrase for status in HTTPStatus}


def install_error_mapping(app: FastAPI) -> None:
    """Answer every error in the one shape: a recipe to copy."""

    @app.exception_handler(nim.NimError)
    async def nim_error(request: Request, error: nim.NimError) -> JSONResponse:
        return nim_error_response(error)

    @app.exception_handler(BatchStopped)
    async def batch_stopped(request: Request, error: BatchStopped) -> JSONResponse:
        return nim_error_response(error.error, outcome=batch_outcome(error.result))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        loc = first["loc"]
        # ("body", "to", 3): the request field is the name after "body".
        name = loc[1] if len(loc) > 1 and loc[0] == "body" and isinstance(loc[1], str) else None
        message = f"{name}: {first['msg']}" if name else str(first["msg"])
        return error_response(422, "invalid_request", message, field=name)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        headers = error.headers
        if error.status_code == 401:
            # The same answer whatever failed: a forger learns nothing (the reason is logged).
            return error_response(401, "unauthorized", "unauthorized", headers=headers)
        phrase = _PHRASES.get(error.status_code, "Error")
        code = re.sub(r"\W+", "_", phrase.lower())
        message = error.detail if isinstance(error.detail, str) else phrase
        return error_response(error.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:
        # Starlette logs the traceback after this answer.
        return error_response(500, "internal_error", "internal error")


# Fails at import, so at startup, when a credential is missing (the message names it).
app = create_app()
