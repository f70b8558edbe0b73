"""The HTTP API of ``rayflow serve``: the routes of LlamaIndex's workflow server, over rayflow workflow instances.

Each served workflow is one instance, created by the caller and closed here when the server stops; its actors start
with its first run and serve every later one. Runs, their status and their recorded event streams live in the
``HandlerRegistry`` (``rayflow.serve.handlers``); events travel as LlamaIndex's envelopes (``rayflow.serve.envelope``).

Every error is a JSON body ``{"detail": "..."}``: 400 for a request that is not right (bad JSON, a start event or an
event posted in that fails validation, naming the field), 401 without the bearer token when one is set, 404 for an
unknown workflow or handler, 409 for a handler that is busy or already over. A run that fails answers as LlamaIndex's
server does: ``POST /workflows/{name}/run`` and ``GET /handlers/{id}`` give the handler with status ``failed`` and
HTTP 500 (202 while it runs), never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import ray
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from rayflow.config import settings
from rayflow.errors import ContextStateError, RayflowError, WorkflowRuntimeError
from rayflow.runtime.cluster import ensure_ray
from rayflow.serve.envelope import EventDecodeError, event_registry, parse_event
from rayflow.serve.handlers import STATUSES, HandlerBusyError, HandlerRegistry, ServedRun
from rayflow.serve.stream import NDJSON, SSE, event_frames
from rayflow.workflow import Workflow

__all__ = ["create_app"]

log = logging.getLogger("rayflow.serve")


class BearerToken:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``, else 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            response = JSONResponse(
                {"detail": "Not authenticated: send the server's token as 'Authorization: Bearer <token>'"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token)
        return False


def _flag(request: Request, name: str, default: bool) -> bool:
    """A boolean query parameter: only ``true`` (any case) is true, as LlamaIndex's server reads them."""
    raw = request.query_params.get(name)
    return default if raw is None else raw.lower() == "true"


def _list(request: Request, name: str) -> list[str] | None:
    values = [value.strip() for value in request.query_params.getlist(name) if value.strip()]
    return values or None


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = await request.json()
    except ValueError as err:
        raise HTTPException(400, f"Invalid JSON body: {err}") from err
    if not isinstance(body, dict):
        raise HTTPException(400, f"Invalid JSON body: expected an object, got {type(body).__name__}")
    return body


def create_app(
    workflows: Mapping[str, Workflow], *, token: str | None = None, heartbeat_s: float | None = None
) -> FastAPI:
    """The server's ASGI app for ``workflows`` (by the name clients use). The app owns the instances: it closes them
    when it shuts down. With ``token``, every request must carry it as a bearer token."""
    served = dict(workflows)
    registry = HandlerRegistry(served)
    heartbeat = settings().serve_heartbeat_s if heartbeat_s is None else heartbeat_s
    registries = {name: event_registry(workflow.events) for name, workflow in served.items()}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(ensure_ray)
        try:
            yield
        finally:
            await registry.close(lambda err: log.warning("closing a served workflow failed: %s", err))

    app = FastAPI(title="rayflow workflows", lifespan=lifespan)
    if token is not None:
        app.add_middleware(BearerToken, token=token)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"Internal server error: {type(exc).__name__}: {exc}"}, status_code=500)

    app.add_exception_handler(Exception, unexpected)

    def workflow_named(name: str) -> Workflow:
        workflow = served.get(name)
        if workflow is None:
            raise HTTPException(404, f"Workflow not found: {name!r} (served: {', '.join(served)})")
        return workflow

    def run_of(handler_id: str) -> ServedRun:
        run = registry.get(handler_id)
        if run is None:
            raise HTTPException(404, f"Handler not found: {handler_id!r}")
        return run

    def start(name: str, body: dict[str, Any]) -> ServedRun:
        workflow = workflow_named(name)
        if body.get("context"):
            raise HTTPException(400, "Validation error for 'context': rayflow serve does not take a context in a run")
        handler_id = body.get("handler_id")
        if handler_id is not None and (not isinstance(handler_id, str) or not handler_id):
            raise HTTPException(400, "Validation error for 'handler_id': expected a non-empty string")
        kwargs = body.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise HTTPException(400, "Validation error for 'kwargs': expected an object")
        data = body.get("start_event")
        start_class = workflow.start_event_class
        try:
            start_event = parse_event(kwargs if data is None else data, registries[name], bare=start_class)
        except EventDecodeError as err:
            raise HTTPException(400, f"Validation error for 'start_event': {err}") from err
        if not isinstance(start_event, start_class):
            raise HTTPException(
                400, f"Validation error for 'start_event': the start event must be a {start_class.__name__}"
            )
        try:
            return registry.start(name, start_event, handler_id)
        except HandlerBusyError as err:
            raise HTTPException(409, str(err)) from err
        except RayflowError as err:
            raise HTTPException(500, f"Error running workflow: {err}") from err

    def status_code(run: ServedRun) -> int:
        return 202 if run.status == "running" else 200 if run.status == "completed" else 500

    @app.get("/health")
    async def health() -> JSONResponse:
        if not ray.is_initialized():
            return JSONResponse({"status": "unhealthy"}, status_code=503)
        return JSONResponse({"status": "healthy"})

    @app.get("/workflows")
    async def list_workflows() -> dict[str, Any]:
        return {"workflows": list(served)}

    @app.get("/workflows/{name}/schema")
    async def schema(name: str) -> dict[str, Any]:
        workflow = workflow_named(name)
        return {
            "start": workflow.start_event_class.model_json_schema(),
            "stop": workflow.stop_event_class.model_json_schema(),
        }

    @app.get("/workflows/{name}/events")
    async def workflow_events(name: str) -> dict[str, Any]:
        return {"events": [cls.model_json_schema() for cls in workflow_named(name).events]}

    @app.post("/workflows/{name}/run")
    async def run_and_wait(name: str, request: Request) -> JSONResponse:
        run = start(name, await _body(request))
        await registry.wait(run)
        return JSONResponse(run.to_json(), status_code=200 if run.status == "completed" else 500)

    @app.post("/workflows/{name}/run-nowait")
    async def run_nowait(name: str, request: Request) -> JSONResponse:
        run = start(name, await _body(request))
        return JSONResponse(run.to_json())

    @app.get("/handlers")
    async def list_handlers(request: Request) -> dict[str, Any]:
        statuses = _list(request, "status")
        if statuses is not None:
            statuses = [status for status in statuses if status in STATUSES]
        runs = registry.query(statuses, _list(request, "workflow_name"))
        return {"handlers": [run.to_json() for run in runs]}

    @app.get("/handlers/{handler_id}")
    async def get_handler(handler_id: str) -> JSONResponse:
        run = run_of(handler_id)
        return JSONResponse(run.to_json(), status_code=status_code(run))

    @app.get("/results/{handler_id}")
    async def get_result(handler_id: str) -> JSONResponse:
        """Deprecated in LlamaIndex's server too: the handler with ``result`` as the StopEvent's fields."""
        run = run_of(handler_id)
        described = run.to_json()
        described["result"] = None if described["result"] is None else described["result"]["value"]
        return JSONResponse(described, status_code=status_code(run))

    @app.post("/handlers/{handler_id}/cancel")
    async def cancel(handler_id: str, request: Request) -> dict[str, str]:
        run = run_of(handler_id)
        if _flag(request, "purge", False):
            if not run.done:
                await registry.cancel(run)
            registry.forget(handler_id)
            return {"status": "deleted"}
        if run.done:
            raise HTTPException(404, f"Handler {handler_id!r} has already ended ({run.status})")
        await registry.cancel(run)
        return {"status": "cancelled"}

    @app.get("/events/{handler_id}", response_model=None)
    async def stream(handler_id: str, request: Request) -> Response:
        run = run_of(handler_id)
        sse = _flag(request, "sse", True)
        raw_after = request.query_params.get("after_sequence", "now")
        after: int
        if raw_after.lower() == "now":
            after = run.last_sequence()
        else:
            try:
                after = int(raw_after)
            except ValueError:
                raise HTTPException(400, f"Invalid after_sequence: {raw_after!r} (an integer, or 'now')") from None
        resume = request.headers.get("last-event-id")
        if sse and resume is not None:
            try:
                after = int(resume)
            except ValueError:
                raise HTTPException(400, f"Invalid Last-Event-ID header: {resume!r} (an event number)") from None
        after = max(after, -1)
        if run.finished_streaming() and after >= run.last_sequence():
            return Response(status_code=204)
        frames = event_frames(
            run,
            after,
            sse=sse,
            include_qualified_name=_flag(request, "include_qualified_name", True),
            heartbeat_s=heartbeat,
        )
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"} if sse else None
        return StreamingResponse(frames, media_type=SSE if sse else NDJSON, headers=headers)

    @app.post("/events/{handler_id}")
    async def send_event(handler_id: str, request: Request) -> dict[str, str]:
        body = await _body(request)
        data, step = body.get("event"), body.get("step")
        if not data:
            raise HTTPException(400, "Validation error for 'event': event data is required")
        if step is not None and not isinstance(step, str):
            raise HTTPException(400, "Validation error for 'step': expected a step name")
        run = run_of(handler_id)
        if run.done:
            raise HTTPException(409, f"Workflow already completed: handler {handler_id!r} is {run.status}")
        try:
            event = parse_event(data, registries[run.workflow_name])
        except EventDecodeError as err:
            raise HTTPException(400, f"Validation error for 'event': {err}") from err
        try:
            await run.handler.send_event(event, step=step)
        except ContextStateError as err:
            raise HTTPException(409, f"Workflow already completed: {err}") from err
        except WorkflowRuntimeError as err:  # a step that does not exist or does not take the event
            raise HTTPException(400, f"Validation error for {'step' if step else 'event'!r}: {err}") from err
        return {"status": "sent"}

    return app
