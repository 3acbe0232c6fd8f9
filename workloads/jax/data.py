"""Token shards on object storage, and the reader that gives each process its slice of a global batch.

The global batch of a step is a pure function of (seed, step): every process
computes the same window offsets and reads only its own rows. A restarted job
therefore sees exactly the batches it would have seen, and one process reading
the whole batch trains the same model as two processes reading half each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workloads.jax import tokenizer
from workloads.jax.storage import StorageError, filesystem

INDEX = "index.json"
DTYPE = np.dtype("<u2")
SHIPPED_CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus.txt"
HELD_OUT_CHARS = 16384  # the corpus's end: never trained on, so measurements on it are honest


def training_text() -> str:
    return SHIPPED_CORPUS.read_text()[:-HELD_OUT_CHARS]


def held_out_text() -> str:
    """Text the shipped model never saw (perplexity of int8 against float weights is measured on it)."""
    return SHIPPED_CORPUS.read_text()[-HELD_OUT_CHARS:]


def write_shards(text: str, uri: str, shards: int = 4) -> dict[str, object]:
    """Tokenize `text` into `shards` files under `uri` plus an index; returns the index."""
    fs, root = filesystem(uri)
    tokens = tokenizer.encode(text).astype(DTYPE)
    fs.makedirs(root, exist_ok=True)
    entries = []
    for i, part in enumerate(np.array_split(tokens, shards)):
        name = f"shard-{i:05d}.bin"
        with fs.open(f"{root}/{name}", "wb") as f:
            f.write(part.tobytes())
        entries.append({"name": name, "tokens": len(part)})
    index = {"tokenizer": "bytes", "vocab_size": tokenizer.VOCAB_SIZE, "dtype": "uint16", "shards": entries}
    with fs.open(f"{root}/{INDEX}", "w") as f:
        json.dump(index, f)
    return index


def ensure_corpus(uri: str) -> None:
    """Write the shipped corpus to `uri` unless token shards are already there."""
    fs, root = filesystem(uri)
    if not fs.exists(f"{root}/{INDEX}"):
        write_shards(training_text(), uri)


@dataclass(frozen=True)
class Shard:
    path: str
    tokens: int


class TokenReader:
    """Reads this process's rows of each global batch of (seq_len + 1)-token windows."""

    def __init__(self, uri: str, seq_len: int, seed: int) -> None:
        self.fs, root = filesystem(uri)
        try:
            with self.fs.open(f"{root}/{INDEX}", "r") as f:
                index = json.load(f)
        except FileNotFoundError as exc:
            raise StorageError(f"{uri}: no token shards here ({INDEX} is missing)") from exc
        self.window = seq_len + 1
        self.seed = seed
        self.shards = [Shard(f"{root}/{s['name']}", int(s["tokens"])) for s in index["shards"]]
        usable = np.array([max(s.tokens - self.window, 0) for s in self.shards], dtype=np.float64)
        if usable.sum() == 0:
            raise StorageError(f"{uri}: shards are shorter than one {self.window}-token window")
        self.weights = usable / usable.sum()
        self._files: dict[str, object] = {}

    def windows(self, step: int, global_batch: int) -> list[tuple[int, int]]:
        """(shard, offset) of every window in the step's global batch."""
        rng = np.random.default_rng([self.seed, step])
        shard_ids = rng.choice(len(self.shards), size=global_batch, p=self.weights)
        return [(int(s), int(rng.integers(0, self.shards[s].tokens - self.window + 1))) for s in shard_ids]

    def read(self, shard: int, offset: int) -> np.ndarray:
        path = self.shards[shard].path
        handle = self._files.get(path)
        if handle is None:
            handle = self._files[path] = self.fs.open(path, "rb")
        handle.seek(offset * DTYPE.itemsize)  # type: ignore[attr-defined]
        data = handle.read(self.window * DTYPE.itemsize)  # type: ignore[attr-defined]
        return np.frombuffer(data, dtype=DTYPE).astype(np.int32)

    def batch(self, step: int, global_batch: int, micro_batches: int, process: int, processes: int) -> np.ndarray:
        """This process's rows, shaped [micro_batches, rows per micro-batch per process, seq_len + 1]."""
        windows = self.windows(step, global_batch)
        per_micro = global_batch // micro_batches
        rows = per_micro // processes
        out = np.empty((micro_batches, rows, self.window), np.int32)
        for m in range(micro_batches):
            first = m * per_micro + process * rows
            for r in range(rows):
                out[m, r] = self.read(*windows[first + r])
        return out
