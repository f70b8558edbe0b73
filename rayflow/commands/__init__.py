"""What the ``rayflow`` command's subcommands do, below its argument parsing (``rayflow.cli``).

``connect`` joins or starts Ray for a command; ``records`` turns events and results into lines of text or JSON;
``run`` plays one run and streams it; ``results`` keeps a batch's JSON-lines output resumable; ``batch`` runs many
inputs through one warm workflow; ``bench`` is the fan-out and chain benchmark against LlamaIndex and raw Ray.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A mistake in the command line or in what it names; the command shows it as one line, exit status 2."""
