"""Embedding throughput: rayflow's batched model pool vs a direct ``SentenceTransformer.encode``, in one run.

Both embed the same passages with the bundled all-MiniLM-L6-v2 at the same batch size on CPU. The direct run uses
the driver's torch threads; the pool runs one replica actor with as many threads as the machine has cores (the
driver only waits meanwhile). Both are warmed up first, then each is timed ``--rounds`` times, alternating, and
the best round of each is reported (the machine is shared, so the best round is the least disturbed one).
The goal is pool >= 90% of direct: the pool adds an actor hop per chunk of ``--batch-size`` passages, hidden by
sending every chunk at once so the replica never waits between batches.

    python benchmarks/embedding.py                     # 2,000 passages, batch 64, 3 rounds
    python benchmarks/embedding.py --n 500 --rounds 1  # a quick run
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from collections.abc import Callable

WORDS = (
    "gateway route key limit token window burst request client upstream latency metric deploy replica cluster "
    "config yaml header retry cache policy quota tenant region zone certificate proxy stream socket log trace "
    "alert dashboard budget plan invoice support ticket version upgrade rollback secret rotate audit"
).split()


def passages(n: int, seed: int = 0) -> list[str]:
    """``n`` deterministic passages of 40-80 words (about the size of a RAG chunk)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 80))) + "." for _ in range(n)]


def best_rate(run: Callable[[], object], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="passages to embed per round")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size of both the pool and the direct run")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each, alternating")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from sentence_transformers import SentenceTransformer

    import rayflow
    from rayflow.rag import HuggingFaceEmbedding, shutdown_model_pools
    from rayflow.rag.embeddings import default_model_path

    texts = passages(args.n)
    print(f"{args.n} passages, batch {args.batch_size}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}")
    rayflow.init()
    try:
        direct = SentenceTransformer(default_model_path(), device="cpu")
        pool_model = HuggingFaceEmbedding(embed_batch_size=args.batch_size)
        pool_model.pool.warmup()
        warm = [f"(warm-up) {t}" for t in texts[: args.batch_size * 2]]
        direct.encode(warm, batch_size=args.batch_size)
        pool_model.embed_array(warm)

        direct_rate = pool_rate = 0.0
        for r in range(args.rounds):
            # New texts each round (the same for both): the pool's replica answers texts it has just embedded
            # from its cache (RAYFLOW_MODEL_CACHE_ITEMS), which would time the cache, not the model.
            batch = [f"({r}) {t}" for t in texts]
            direct_rate = max(direct_rate, best_rate(
                lambda b=batch: direct.encode(b, batch_size=args.batch_size, normalize_embeddings=True), args.n, 1
            ))  # fmt: skip
            pool_rate = max(pool_rate, best_rate(lambda b=batch: pool_model.embed_array(b), args.n, 1))
        info = pool_model.pool.replica_info()[0]
        threads = torch.get_num_threads()
        print(f"direct SentenceTransformer.encode : {direct_rate:8.1f} passages/s (torch threads {threads})")
        print(f"rayflow ModelPool (1 replica)     : {pool_rate:8.1f} passages/s (replica threads {info['threads']})")
        print(f"pool / direct                     : {pool_rate / direct_rate:8.1%}")
    finally:
        shutdown_model_pools()


if __name__ == "__main__":
    main()
