"""Ray for a command: an embedded local Ray, or a cluster (``--address`` / ``RAY_ADDRESS``) checked to answer first.

``ray.init`` keeps retrying an address that does not answer for a minute or more, logging a line a second; a command
first checks that the address takes a TCP connection and that what answers there is a Ray cluster's GCS (a few
seconds at most, Ray's own log lines held back meanwhile), and fails with one line naming the address otherwise.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

from rayflow.commands import UserError

__all__ = ["PROBE_TIMEOUT_S", "connect", "probe"]

#: Seconds a command waits for a cluster's address to take a connection before it gives up.
PROBE_TIMEOUT_S = 3.0


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null meanwhile: Ray's C++ client logs each failed attempt there."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _use_token_if_any() -> None:
    """What ``ray.init`` does before it joins a cluster: use the token found here (``~/.ray/auth_token``,
    ``RAY_AUTH_TOKEN``) unless ``RAY_AUTH_MODE`` says otherwise. Done before the first GCS client of the process:
    the client's authentication mode is settled when the first one is made."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _gcs_answer(address: str, timeout_s: float) -> str | None:
    """None when a Ray GCS answers at ``address`` (one that asks for a token counts), else what went wrong."""
    from ray._raylet import GcsClient  # type: ignore[attr-defined]
    from ray.exceptions import AuthenticationError

    outcome: list[str | None] = []

    def ask() -> None:
        try:
            GcsClient(address=address)
        except AuthenticationError as err:
            outcome.append(f"it refused this process's authentication token (RAY_AUTH_TOKEN, ~/.ray/auth_token): {err}")
        except Exception as err:
            outcome.append(" ".join(str(err).split()) or type(err).__name__)
        else:
            outcome.append(None)

    asker = threading.Thread(target=ask, name="rayflow-probe", daemon=True)
    with _quiet_stderr():
        _use_token_if_any()
        asker.start()
        asker.join(timeout_s)
    return outcome[0] if outcome else f"no answer from a Ray GCS within {timeout_s:g} s"


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise ``UserError`` unless ``address`` (``host:port`` or ``ray://host:port``) takes a TCP connection and,
    for a GCS address (not ``ray://``), a Ray GCS answers there."""
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
    if "://" not in address:
        problem = _gcs_answer(address, timeout_s)
        if problem is not None:
            raise UserError(f"no Ray cluster answers at {address}: {problem}")


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
    except Exception as err:  # Ray raises bare Exception too (a local node that timed out starting)
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise UserError(f"cannot start or join {where}: {type(err).__name__}: {err}") from err
