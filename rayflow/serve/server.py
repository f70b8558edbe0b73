"""Serving workflows over HTTP with uvicorn, and the rule on where the server may listen.

The server listens on 127.0.0.1 unless told otherwise. Listening on any other address needs a bearer token: the
API starts runs and sends events into them, so it is never open to a network without one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import uvicorn

from rayflow.errors import ServeConfigurationError
from rayflow.serve.app import create_app
from rayflow.workflow import Workflow

__all__ = ["DEFAULT_HOST", "check_binding", "serve"]

DEFAULT_HOST = "127.0.0.1"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse (``ServeConfigurationError``) to listen beyond this machine without a token, or with an empty one."""
    if token is not None and not token.strip():
        raise ServeConfigurationError("the token is empty; give a non-empty --token (or RAYFLOW_TOKEN)")
    if token is None and not _is_loopback(host):
        raise ServeConfigurationError(
            f"listening on {host} needs a bearer token: pass --token (or set RAYFLOW_TOKEN), "
            f"or listen on {DEFAULT_HOST}"
        )


def serve(
    workflows: Mapping[str, Workflow],
    *,
    host: str = DEFAULT_HOST,
    port: int = 8000,
    token: str | None = None,
    heartbeat_s: float | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``workflows`` (by name) until interrupted; on the way out runs still going are cancelled and the
    workflows closed (their actors stop)."""
    check_binding(host, token)
    app = create_app(workflows, token=token, heartbeat_s=heartbeat_s)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
