"""``rayflow serve`` over real HTTP: a uvicorn server on 127.0.0.1 (in a thread of the test process, sharing the
session's Ray) serving two small workflows, driven with httpx and with LlamaIndex's own client.

One server serves the whole module, so its workflow instances stay warm from test to test; when it stops, their
actors must be gone.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from rayflow import Context, Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent, Workflow, step
from rayflow.serve import create_app
from tests.conftest import live_rayflow_actors

TOKEN = "s3cret"


class GreetStart(StartEvent):
    name: str
    count: int = 3


class Progress(Event):
    n: int


class Greet(Workflow):
    """Streams ``count`` Progress events, then greets ``name`` (saying "again" in a context that greeted before);
    the name "fail" makes its step raise."""

    @step
    async def greet(self, ctx: Context, ev: GreetStart) -> StopEvent:
        if ev.name == "fail":
            raise ValueError("no greeting for fail")
        for n in range(ev.count):
            ctx.write_event_to_stream(Progress(n=n))
        greeted = await ctx.store.get("greeted", default=0) + 1
        await ctx.store.set("greeted", greeted)
        return StopEvent(result=f"hello {ev.name}" + (f" again ({greeted})" if greeted > 1 else ""))


class Survey(Workflow):
    """Asks a human (an InputRequiredEvent on the stream) and ends with the answer (a HumanResponseEvent)."""

    @step
    async def ask(self, ev: StartEvent) -> InputRequiredEvent:
        return InputRequiredEvent(prefix=f"your view on {ev.get('topic', 'tides')}? ")

    @step
    async def record(self, ev: HumanResponseEvent) -> StopEvent:
        return StopEvent(result=f"noted: {ev.response}")


class _Served:
    """A uvicorn server in a thread, on a socket already listening (requests wait in its backlog until it serves)."""

    def __init__(self, token: str | None = None, with_workflows: bool = True) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._token, self._with_workflows = token, with_workflows
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="rayflow-serve-test", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _serve(self) -> None:
        workflows: dict[str, Workflow] = {"Greet": Greet(timeout=30), "Survey": Survey(timeout=30)}
        app = create_app(workflows if self._with_workflows else {}, token=self._token, heartbeat_s=0.2)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self._ready.set()
        self._server.run(sockets=[self._sock])

    def stop(self) -> None:
        assert self._server is not None
        self._server.should_exit = True
        self._thread.join(timeout=60)
        self._sock.close()
        assert not self._thread.is_alive()


@pytest.fixture(scope="module")
def server(ray_cluster: None) -> Iterator[str]:
    served = _Served()
    yield served.url
    served.stop()
    assert live_rayflow_actors() == [], "the server left workflow actors alive"


@pytest.fixture
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=60) as client:
        yield client


def _sse(response: httpx.Response, limit: int | None = None) -> list[tuple[int, dict[str, Any]]]:
    """The (id, envelope) pairs of a server-sent-events body, up to ``limit`` of them; heartbeats are skipped."""
    found: list[tuple[int, dict[str, Any]]] = []
    ident: int | None = None
    for line in response.iter_lines():
        if line.startswith("id:"):
            ident = int(line[3:])
        elif line.startswith("data:"):
            assert ident is not None
            found.append((ident, json.loads(line[5:])))
            if limit is not None and len(found) == limit:
                break
    return found


def test_a_run_waits_for_its_result_and_a_failed_run_answers_500_with_its_error(http: httpx.Client) -> None:
    assert http.get("/health").json() == {"status": "healthy"}
    assert http.get("/workflows").json() == {"workflows": ["Greet", "Survey"]}
    schema = http.get("/workflows/Greet/schema").json()
    assert schema["start"]["required"] == ["name"] and schema["stop"]["title"] == "StopEvent"

    done = http.post("/workflows/Greet/run", json={"start_event": {"name": "ada", "count": 1}})
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "completed" and body["error"] is None and body["completed_at"] is not None
    assert body["result"] == {
        "value": {"result": "hello ada"},
        "qualified_name": "workflows.events.StopEvent",
        "type": "StopEvent",
        "types": None,
    }
    assert http.get(f"/handlers/{body['handler_id']}").json()["status"] == "completed"
    assert http.get(f"/results/{body['handler_id']}").json()["result"] == {"result": "hello ada"}

    again = {"start_event": {"name": "ada", "count": 0}, "handler_id": body["handler_id"]}
    assert http.post("/workflows/Greet/run", json=again).json()["result"]["value"] == {"result": "hello ada again (2)"}

    failed = http.post("/workflows/Greet/run", json={"kwargs": {"name": "fail"}})
    assert failed.status_code == 500
    assert failed.json()["status"] == "failed" and failed.json()["error"] == "no greeting for fail"
    assert http.get(f"/handlers/{failed.json()['handler_id']}").status_code == 500
    streamed = http.get(f"/events/{failed.json()['handler_id']}", params={"sse": "false", "after_sequence": "-1"})
    last = json.loads(streamed.text.splitlines()[-1])
    assert (last["type"], last["types"]) == ("WorkflowFailedEvent", ["StopEvent"])
    assert last["value"]["step_name"] == "greet"
    assert last["value"]["exception"] == {
        "exception_type": "builtins.ValueError",
        "exception_message": "no greeting for fail",
    }
    listed = http.get("/handlers", params={"status": "failed", "workflow_name": "Greet"}).json()["handlers"]
    assert [h["handler_id"] for h in listed] == [failed.json()["handler_id"]]


def test_run_nowait_then_the_whole_stream_and_a_resume_gets_exactly_the_missed_events(http: httpx.Client) -> None:
    started = http.post("/workflows/Greet/run-nowait", json={"start_event": {"name": "bo", "count": 5}})
    assert started.status_code == 200 and started.json()["status"] == "running"
    handler_id = started.json()["handler_id"]

    with http.stream("GET", f"/events/{handler_id}", params={"after_sequence": "-1"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        whole = _sse(response)
    assert [ident for ident, _ in whole] == list(range(6))
    assert [env["value"] for _, env in whole[:5]] == [{"n": n} for n in range(5)]
    assert [env["type"] for _, env in whole] == ["Progress"] * 5 + ["StopEvent"]
    assert whole[0][1]["qualified_name"] == f"{__name__}.Progress"

    with http.stream("GET", f"/events/{handler_id}", params={"after_sequence": "-1"}) as response:
        first_two = _sse(response, limit=2)  # the connection is dropped here
    with http.stream("GET", f"/events/{handler_id}", headers={"Last-Event-ID": str(first_two[-1][0])}) as response:
        rest = _sse(response)
    assert first_two + rest == whole

    assert _sse(http.get(f"/events/{handler_id}", params={"after_sequence": "-7"})) == whole
    ndjson = http.get(f"/events/{handler_id}", params={"sse": "false", "after_sequence": "3"})
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in ndjson.text.splitlines()] == [env for _, env in whole[4:]]
    assert http.get(f"/events/{handler_id}").status_code == 204  # over, and "now" is past its last event


def test_a_human_answer_posted_in_ends_the_run(http: httpx.Client) -> None:
    handler_id = http.post("/workflows/Survey/run-nowait", json={"start_event": {"topic": "tea"}}).json()["handler_id"]
    with http.stream("GET", f"/events/{handler_id}", params={"after_sequence": "-1"}) as response:
        asked = _sse(response, limit=1)
    assert asked[0][1]["type"] == "InputRequiredEvent"
    assert asked[0][1]["value"] == {"_data": {"prefix": "your view on tea? "}}

    not_its = http.post(f"/events/{handler_id}", json={"event": {"type": "Progress", "value": {"n": 1}}})
    assert not_its.status_code == 400 and "Invalid event type: Progress" in not_its.json()["detail"]
    malformed = http.post(f"/events/{handler_id}", json={"event": {"type": "HumanResponseEvent", "value": [1]}})
    assert malformed.status_code == 400 and "Invalid HumanResponseEvent" in malformed.json()["detail"]
    no_step = http.post(
        f"/events/{handler_id}", json={"event": {"type": "HumanResponseEvent", "value": {}}, "step": "nowhere"}
    )
    assert no_step.status_code == 400 and "nowhere" in no_step.json()["detail"]

    answer = {"type": "HumanResponseEvent", "value": {"response": "strong"}}
    assert http.post(f"/events/{handler_id}", json={"event": answer}).json() == {"status": "sent"}
    with http.stream("GET", f"/events/{handler_id}", headers={"Last-Event-ID": "0"}) as response:
        ended = _sse(response)
    assert [env["value"] for _, env in ended] == [{"result": "noted: strong"}]
    handler = http.get(f"/handlers/{handler_id}").json()
    assert handler["status"] == "completed" and handler["result"]["value"] == {"result": "noted: strong"}
    late = http.post(f"/events/{handler_id}", json={"event": answer})
    assert late.status_code == 409


def test_a_cancelled_run_ends_its_stream_and_shows_cancelled(http: httpx.Client) -> None:
    handler_id = http.post("/workflows/Survey/run-nowait", json={}).json()["handler_id"]
    with http.stream("GET", f"/events/{handler_id}", params={"after_sequence": "-1"}) as response:
        lines = response.iter_lines()
        assert "InputRequiredEvent" in next(line for line in lines if line.startswith("data:"))
        assert next(line for line in lines if line) == ": heartbeat"  # it waits for an answer now, and says so
    assert http.post(f"/handlers/{handler_id}/cancel").json() == {"status": "cancelled"}
    handler = http.get(f"/handlers/{handler_id}")
    assert handler.status_code == 500 and handler.json()["status"] == "cancelled"
    with http.stream("GET", f"/events/{handler_id}", params={"after_sequence": "0"}) as response:
        assert [env["type"] for _, env in _sse(response)] == ["WorkflowCancelledEvent"]
    assert http.post(f"/handlers/{handler_id}/cancel").status_code == 404  # already over
    assert http.post(f"/handlers/{handler_id}/cancel", params={"purge": "true"}).json() == {"status": "deleted"}
    assert http.get(f"/handlers/{handler_id}").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "names"),
    [
        ("post", "/workflows/Nope/run", {}, 404, "Nope"),
        ("get", "/workflows/Nope/schema", None, 404, "Nope"),
        ("post", "/workflows/Greet/run", {"start_event": {"count": 2}}, 400, "'start_event': Invalid GreetStart: name"),
        ("post", "/workflows/Greet/run-nowait", {}, 400, "name: Field required"),
        ("post", "/workflows/Greet/run-nowait", {"start_event": {"name": "x", "count": "many"}}, 400, "count"),
        ("post", "/workflows/Greet/run", {"start_event": {"type": "Progress", "value": {"n": 1}}}, 400, "GreetStart"),
        ("post", "/workflows/Greet/run", {"context": {"state": {}}}, 400, "'context'"),
        ("post", "/workflows/Greet/run", "[1, 2", 400, "Invalid JSON body"),
        ("get", "/handlers/nope", None, 404, "nope"),
        ("get", "/events/nope", None, 404, "nope"),
        ("post", "/events/nope", {"event": {"type": "HumanResponseEvent", "value": {}}}, 404, "nope"),
        ("post", "/events/nope", {}, 400, "'event'"),
        ("post", "/handlers/nope/cancel", None, 404, "nope"),
    ],
)
def test_bad_requests_get_a_4xx_naming_what_is_wrong(
    http: httpx.Client, method: str, path: str, body: Any, status: int, names: str
) -> None:
    content = body if isinstance(body, str) else None
    response = http.request(method, path, json=None if content else body, content=content)
    assert response.status_code == status
    assert names in response.json()["detail"]


def test_with_a_token_every_request_needs_it(ray_cluster: None) -> None:
    served = _Served(token=TOKEN, with_workflows=False)
    try:
        assert httpx.get(f"{served.url}/workflows").status_code == 401
        assert httpx.get(f"{served.url}/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = httpx.get(f"{served.url}/workflows", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json() == {"workflows": []}
    finally:
        served.stop()


async def test_llamaindex_client_runs_streams_and_answers_unchanged(server: str) -> None:
    from llama_agents.client import WorkflowClient
    from workflows.events import HumanResponseEvent as LlamaHumanResponse
    from workflows.events import StopEvent as LlamaStop

    client = WorkflowClient(base_url=server)
    assert (await client.is_healthy()).status == "healthy"
    assert (await client.list_workflows()).workflows == ["Greet", "Survey"]

    done = await client.run_workflow("Greet", start_event={"name": "cy", "count": 0})
    assert done.status == "completed" and done.result is not None
    stop = done.result.load_event()
    assert isinstance(stop, LlamaStop) and stop.result == "hello cy"

    started = await client.run_workflow_nowait("Survey")
    stream = client.get_workflow_events(started.handler_id)
    seen = []
    async for envelope in stream:
        seen.append(envelope.type)
        if envelope.type == "InputRequiredEvent":
            await client.send_event(started.handler_id, LlamaHumanResponse(response="yes"))
    assert seen == ["InputRequiredEvent", "StopEvent"] and stream.last_sequence == 1
    finished = await asyncio.wait_for(client.wait_for_handler(started.handler_id, poll_interval=0.05), 30)
    assert finished.status == "completed" and finished.result is not None
    assert finished.result.value == {"result": "noted: yes"}

    waiting = await client.run_workflow_nowait("Survey")
    assert (await client.cancel_handler(waiting.handler_id)).status == "cancelled"
    cancelled = await client.get_handlers(status=["cancelled"])  # get_handler raises: the server answers 500
    assert waiting.handler_id in [h.handler_id for h in cancelled.handlers]
    handlers = await client.get_handlers(status=["completed"], workflow_name=["Survey"])
    assert started.handler_id in [h.handler_id for h in handlers.handlers]
