"""The engine's loop: the scheduler's choices run on the compiled steps, each new token turned into
text and handed to its request's sink. The engine core's process (process.py) calls `step` itself;
an engine in a caller's own process (tests, the overhead benchmark) may run it on a thread of its
own (`start`), with `submit` called from any other."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence as Devices

import jax
import jax.numpy as jnp
import numpy as np

from meshstack.core.model_config import ModelConfig
from meshstack.core.sizing import kv_cache_rows, of_model
from meshstack.workloads.jax.engine.detokenizer import Detokenizer
from meshstack.workloads.jax.engine.kv_slots import KVSlots
from meshstack.workloads.jax.engine.request import Output, Request
from meshstack.workloads.jax.engine.scheduler import Scheduler, Sequence
from meshstack.workloads.jax.engine.stats import EngineStats, Load, NoObserver, Observer
from meshstack.workloads.jax.engine.steps import MIN_CHUNK, ModelSteps, bucket
from meshstack.workloads.jax.model import Params
from meshstack.workloads.jax.tokenization import ByteTokenizer, Tokenizer


class Engine:
    def __init__(
        self,
        params: Params,
        cfg: ModelConfig,
        max_batch: int,
        max_waiting: int,
        kv_cache_gib: float | None = None,
        dtype: jnp.dtype = jnp.float32,
        prefill_chunk: int = 256,
        prefix_cache: bool = True,
        devices: Devices[jax.Device] | None = None,
        observer: Observer | None = None,
        tokenizer: Tokenizer | None = None,
        max_seq_len: int | None = None,
    ) -> None:
        self.tokenizer: Tokenizer = tokenizer or ByteTokenizer()
        self.max_seq_len = max_seq_len or cfg.max_position_embeddings
        if self.max_seq_len > cfg.max_position_embeddings:
            raise ValueError(
                f"serve.max_seq_len {self.max_seq_len} exceeds the model's max_position_embeddings "
                f"{cfg.max_position_embeddings}"
            )
        try:
            self.slots = kv_cache_rows(
                of_model(cfg), self.max_seq_len, jnp.dtype(dtype).itemsize, max_batch, kv_cache_gib
            )
        except ValueError as exc:
            raise ValueError(f"serve.kv_cache_gib {kv_cache_gib}: {exc}") from None
        vocab = np.arange(cfg.vocab_size)
        # What sampling may pick: ids the tokenizer has, none it bans (the byte model's PAD).
        allowed = (vocab < self.tokenizer.vocab_size) & ~np.isin(vocab, list(self.tokenizer.banned_ids))
        chunk = max(MIN_CHUNK, bucket(min(prefill_chunk, self.max_seq_len)))
        self.steps = ModelSteps(
            params,
            cfg,
            self.slots,
            self.max_seq_len,
            chunk,
            dtype,
            allowed,
            self.tokenizer.pad_id,
            devices or jax.local_devices()[:1],
        )
        self.kv = KVSlots(self.slots, prefix_cache)
        self.scheduler = Scheduler(self.kv, max_waiting)
        self.observer: Observer = observer or NoObserver()
        self.stats = EngineStats()
        self._wake = threading.Condition()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="engine", daemon=True)

    # --- the client's side -----------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        """Queue a request (EngineFullError, EngineDrainingError: refused, nothing queued)."""
        self.scheduler.enqueue(request, Detokenizer(self.tokenizer.stream(), request.sampling.stop))
        with self._wake:
            self._wake.notify()

    def drain(self) -> None:
        """Take no new request; the ones accepted run to their end."""
        self.scheduler.draining.set()

    def idle(self) -> bool:
        return self.scheduler.idle()

    def load(self) -> Load:
        return Load(len(self.scheduler.running), self.scheduler.waiting.qsize(), self.slots)

    def warm_up(self) -> None:
        self.steps.warm_up()

    def weight_dtypes(self) -> tuple[str, ...]:
        """The dtypes the placed weights hold (int8 among them when quantized)."""
        return tuple(sorted({str(leaf.dtype) for leaf in jax.tree.leaves(self.steps.params)}))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        with self._wake:
            self._wake.notify()
        self._thread.join(timeout=10)

    # --- the loop --------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopped.is_set():
            if self.idle():
                with self._wake:
                    self._wake.wait_for(lambda: not self.idle() or self._stopped.is_set(), timeout=1.0)
                continue
            self.step()
            # Hand the GIL over between steps: the caller's threads have this step's outputs to read.
            time.sleep(0)

    def step(self) -> None:
        """One iteration: drop the cancelled, admit, one prefill chunk, one decode step."""
        for seq in self.scheduler.cancelled():
            self._finish(seq, "cancelled")
        admitted, dropped = self.scheduler.admit()
        for seq in dropped:
            self._finish(seq, "cancelled")
        for _seq, placement in admitted:
            if placement.copy_from is not None:
                self.steps.copy_row(placement.copy_from, placement.slot)
            self.stats.prefix_queries += 1
            self.stats.prefix_hits += placement.reused > 0
            self.observer.prefix_lookup(placement.reused)
        pending = self.scheduler.next_prefill()
        if pending is not None:
            self._prefill_chunk(pending)
        decoding = self.scheduler.decoding()
        if decoding:
            self._decode_step(decoding)

    def _prefill_chunk(self, seq: Sequence) -> None:
        prompt = seq.request.prompt
        tokens = prompt[seq.prefilled : seq.prefilled + self.steps.chunk]
        token = self.steps.prefill(seq.slot, tokens, seq.prefilled, seq.sampling())
        if self.scheduler.prefilled(seq, tokens):
            assert seq.first_token_at is not None, "set with the prompt's last chunk"
            self.observer.first_token(seq.first_token_at - seq.request.arrived)
            self._accept(seq, token)

    def _decode_step(self, batch: list[Sequence]) -> None:
        fed = [s.generated[-1] for s in batch]
        began = time.perf_counter()
        picked = self.steps.decode(
            [s.slot for s in batch], fed, [s.position for s in batch], [s.sampling() for s in batch]
        )
        elapsed = time.perf_counter() - began
        self.observer.batch(len(batch))
        for seq, token, new in zip(batch, fed, picked, strict=True):
            self.kv.wrote(seq.slot, [token])
            self.observer.token_step(elapsed)
            self._accept(seq, int(new))

    def _accept(self, seq: Sequence, token: int) -> None:
        """One new token: stream the text it completes, and finish on an end-of-sequence id (the model's
        eos_token_id), a stop string or a limit."""
        seq.generated.append(token)
        self.stats.generated_tokens += 1
        self.observer.generated(1)
        if token in self.tokenizer.eos_ids:
            seq.generated.pop()
            self._finish(seq, "stop")
            return
        delta, stopped = seq.text.step(token)
        if stopped:
            self._finish(seq, "stop")
            return
        full = len(seq.request.prompt) + len(seq.generated) >= self.max_seq_len
        if len(seq.generated) >= seq.request.sampling.max_tokens or full:
            self._finish(seq, "length", delta)
            return
        if delta:
            seq.request.sink(Output(delta))

    def _finish(self, seq: Sequence, reason: str, delta: str = "") -> None:
        text = ""
        if reason != "cancelled":
            text = delta + seq.text.rest()
            self.observer.finished(time.perf_counter() - seq.request.arrived)
        seq.request.sink(
            Output(
                text,
                reason,
                prompt_tokens=len(seq.request.prompt),
                completion_tokens=len(seq.generated),
                cached_tokens=seq.cached_tokens,
                token_ids=tuple(seq.generated),
            )
        )
        self.scheduler.retire(seq)
