"""The connection to Ray: start an embedded local Ray, or join a cluster through ``RAY_ADDRESS`` / ``address=``.

Every piece of rayflow that creates an actor calls :func:`ensure_ray` first, so a program never has to call
``ray.init`` itself. A Ray that the program already started is used as it is.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

import ray

from rayflow.config import settings

_lock = threading.Lock()
log = logging.getLogger("rayflow")


def init(address: str | None = None, **ray_init_kwargs: Any) -> None:
    """Connect to Ray: ``address`` or ``RAY_ADDRESS`` joins a running cluster, nothing starts a local one.

    Calling it again once connected does nothing. Extra keyword arguments go to ``ray.init``.
    """
    with _lock:
        if ray.is_initialized():
            return
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address is None and sys.stderr.isatty():
            print("rayflow: starting a local Ray (a few seconds)...", file=sys.stderr, flush=True)
        ray_init_kwargs.setdefault("namespace", settings().namespace)
        ray_init_kwargs.setdefault("log_to_driver", True)
        ray_init_kwargs.setdefault("logging_level", logging.WARNING)
        ray.init(address=address, **ray_init_kwargs)


def ensure_ray() -> None:
    """Make sure this process is connected to Ray, starting a local one if nothing is connected."""
    if not ray.is_initialized():
        init()


def cluster_cores() -> int | None:
    """The CPU cores of the cluster, as Ray counts them (None: unknown, pools are not held to them)."""
    try:
        cores = int(ray.cluster_resources().get("CPU", 0))
    except Exception:
        return None
    return cores or None
