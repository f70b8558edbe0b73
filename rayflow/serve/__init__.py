"""``rayflow serve``: workflows behind the HTTP API of LlamaIndex's workflow server, so its clients work unchanged.

``create_app`` builds the ASGI app for workflow instances by name (``rayflow.serve.app``); ``serve`` runs it with
uvicorn after ``check_binding`` (``rayflow.serve.server``). Runs and their recorded event streams live in
``rayflow.serve.handlers``; events on the wire are LlamaIndex's envelopes (``rayflow.serve.envelope``).
"""

from __future__ import annotations

from rayflow.serve.app import create_app
from rayflow.serve.server import DEFAULT_HOST, check_binding, serve

__all__ = ["DEFAULT_HOST", "check_binding", "create_app", "serve"]
