"""A model put into a Hugging Face cache the way ``huggingface_hub`` leaves a download there, for offline tests.

The cache layout (``<HF_HOME>/hub/models--<org>--<name>/``): ``blobs/<content hash>`` holds each file once,
``snapshots/<revision>/<path>`` links to its blob, and ``refs/main`` names the revision. With ``HF_HOME`` pointing
at the cache and ``HF_HUB_OFFLINE=1``, loading the model by its hub name reads these files and never the network:
what a user who downloaded the model earlier has.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def repo_folder(hub: Path, repo_id: str) -> Path:
    """``<hub>/models--org--name``: where the cache keeps a model repository."""
    return hub / ("models--" + repo_id.replace("/", "--"))


def install_in_cache(model_dir: Path, hf_home: Path, repo_id: str) -> Path:
    """Copy every file under ``model_dir`` into the cache at ``hf_home`` as revision ``main`` of ``repo_id``.

    Returns the snapshot folder. The revision is a hash of the files, so the same model lands in the same place.
    """
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    revision = hashlib.sha1("".join(f"{p.relative_to(model_dir)}:{d}\n" for p, d in digests.items()).encode())
    repo = repo_folder(hf_home / "hub", repo_id)
    snapshot = repo / "snapshots" / revision.hexdigest()
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for path, digest in digests.items():
        blob = repo / "blobs" / digest
        if not blob.exists():
            blob.write_bytes(path.read_bytes())
        link = snapshot / path.relative_to(model_dir)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision.hexdigest())
    return snapshot
