"""Ray for a command: an embedded local Ray, or a cluster (``--address`` / ``RAY_ADDRESS``) checked to answer first.

``ray.init`` keeps retrying an address that does not answer for a minute or more; a command checks that the address
takes a TCP connection (a few seconds at most) and fails with one line naming it otherwise.
"""

from __future__ import annotations

import os
import socket

from rayflow.commands import UserError

__all__ = ["PROBE_TIMEOUT_S", "connect", "probe"]

#: Seconds a command waits for a cluster's address to take a connection before it gives up.
PROBE_TIMEOUT_S = 3.0


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise ``UserError`` unless ``address`` (``host:port`` or ``ray://host:port``) takes a TCP connection."""
    where = address.split("://", 1)[-1]
    host, colon, port = where.rpartition(":")
    if not colon or not port.isdigit():
        return  # no port to try (a name Ray resolves itself): ray.init says what is wrong
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        why = "no answer" if isinstance(err, socket.timeout) else (err.strerror or str(err))
        raise UserError(f"cannot reach the Ray cluster at {address}: {why}") from err


def connect(address: str | None, *, log_to_driver: bool = True) -> None:
    """Join the cluster at ``address`` (else ``RAY_ADDRESS``), or start a local Ray without its dashboard."""
    from rayflow.runtime.cluster import init

    address = address or os.environ.get("RAY_ADDRESS") or None
    options: dict[str, object] = {"log_to_driver": log_to_driver}
    if address is None:
        options["include_dashboard"] = False  # the embedded Ray ends with the command; its dashboard would too
    elif address not in ("auto", "local"):
        probe(address)
    try:
        init(address, **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise UserError(f"cannot start or join {where}: {type(err).__name__}: {err}") from err
