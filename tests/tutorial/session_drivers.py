"""What a reader adds to the tutorial's blocks that define a workflow but never run it (see reader_session.py).

A driver finds the workflow class its block defined, runs it the way the tutorial's own programs run theirs
(``await workflow.run(query=...)``), and returns what a test needs to check, as JSON-able values.
"""

from __future__ import annotations

import time
from typing import Any

from rayflow import Workflow

#: Two questions either side of the branching block's rule, which routes by word count (four words and five).
SHORT_QUESTION = "Where are logs kept?"
LONG_QUESTION = "Which regions host staging gateways?"
SEARCH_QUERY = "gateway timeouts"
#: The parallel block cannot finish; this is its timeout, far longer than rayflow should need to say so.
PARALLEL_TIMEOUT_S = 60.0


def _workflow_class(namespace: dict[str, Any]) -> type[Workflow]:
    """The one Workflow subclass the session's blocks defined."""
    defined = [
        v
        for v in namespace.values()
        if isinstance(v, type) and issubclass(v, Workflow) and v.__module__ == namespace["__name__"]
    ]
    assert len(defined) == 1, f"expected one workflow class, found {[c.__name__ for c in defined]}"
    return defined[0]


async def branching(namespace: dict[str, Any]) -> dict[str, Any]:
    """The routing workflow on a short and a long question: the result of each."""
    workflow = _workflow_class(namespace)(timeout=60)
    try:
        return {q: str(await workflow.run(query=q)) for q in (SHORT_QUESTION, LONG_QUESTION)}
    finally:
        await workflow.close()


async def parallel(namespace: dict[str, Any]) -> dict[str, Any]:
    """The parallel-search workflow, which waits for more results than it ever makes: how, and how soon, it ends."""
    workflow = _workflow_class(namespace)(timeout=PARALLEL_TIMEOUT_S)
    started = time.monotonic()
    try:
        result = await workflow.run(query=SEARCH_QUERY)
    except Exception as err:
        failure: dict[str, Any] = {"error": type(err).__name__, "message": str(err)}
        failure["error_mro"] = [c.__name__ for c in type(err).__mro__]
        return {**failure, "elapsed_s": time.monotonic() - started, "timeout_s": PARALLEL_TIMEOUT_S}
    finally:
        await workflow.close()
    return {"result": str(result), "elapsed_s": time.monotonic() - started}


async def state_pair(namespace: dict[str, Any]) -> Any:
    """The FAQ's two steps, in the workflow class the test put them in: the run's result."""
    workflow = _workflow_class(namespace)(timeout=60)
    try:
        return await workflow.run()
    finally:
        await workflow.close()
