"""Token shards on object storage, and the reader that gives each process its slice of a global batch.

The global batch of a step is a pure function of (seed, step): every process
computes the same window offsets and reads only its own rows. A restarted job
therefore sees exactly the batches it would have seen, and one process reading
the whole batch trains the same model as two processes reading half each.

Shards hold little-endian token ids, uint16 while the vocabulary fits (65,536 ids) and uint32 past
it; their index.json says which, with the vocabulary (and, for shards `meshstack data prepare` wrote,
the tokenizer's fingerprint). The reader refuses shards whose width or vocabulary is not the model's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meshstack.core.model_config import ModelConfig
from meshstack.workloads.jax import tokenizer
from meshstack.workloads.jax.storage import StorageError, filesystem

INDEX = "index.json"
DTYPE = np.dtype("<u2")  # the byte tokenizer's shards, and any vocabulary up to 65,536 ids
WIDE = np.dtype("<u4")
WIDTHS: dict[str, np.dtype] = {"uint16": DTYPE, "uint32": WIDE}
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
    index = {
        "tokenizer": "bytes",
        "tokenizer_fingerprint": "bytes-260",
        "vocab_size": tokenizer.VOCAB_SIZE,
        "dtype": "uint16",
        "shards": entries,
    }
    with fs.open(f"{root}/{INDEX}", "w") as f:
        json.dump(index, f)
    return index


class DataMismatchError(ValueError):
    """Token shards that do not fit the model: restarting cannot help."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest shard width that holds every id of the vocabulary."""
    return DTYPE if vocab_size <= 2**16 else WIDE


def dtype_name(dtype: np.dtype) -> str:
    return next(name for name, d in WIDTHS.items() if d == dtype)


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

    def __init__(
        self,
        uri: str,
        seq_len: int,
        seed: int,
        model: ModelConfig | None = None,
        tokenizer_fingerprint: str | None = None,
    ) -> None:
        self.fs, root = filesystem(uri)
        try:
            with self.fs.open(f"{root}/{INDEX}", "r") as f:
                index = json.load(f)
        except FileNotFoundError as exc:
            raise StorageError(f"{uri}: no token shards here ({INDEX} is missing)") from exc
        self.dtype = check_index(index, f"{uri.rstrip('/')}/{INDEX}", model, tokenizer_fingerprint)
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
        handle.seek(offset * self.dtype.itemsize)  # type: ignore[attr-defined]
        data = handle.read(self.window * self.dtype.itemsize)  # type: ignore[attr-defined]
        return np.frombuffer(data, dtype=self.dtype).astype(np.int32)

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


def check_index(
    index: dict[str, object], where: str, model: ModelConfig | None, tokenizer_fingerprint: str | None
) -> np.dtype:
    """The shards' width, once it and their vocabulary are found to be the model's (DataMismatchError)."""
    name = str(index.get("dtype", "uint16"))
    if name not in WIDTHS:
        raise DataMismatchError(f"{where}: dtype {name!r} is not a shard width (uint16 or uint32)")
    dtype = WIDTHS[name]
    if model is None:
        return dtype
    vocab = index.get("vocab_size")
    if isinstance(vocab, int) and vocab > model.vocab_size:
        raise DataMismatchError(
            f"{where}: the shards' vocabulary has {vocab} ids; the model's vocab_size is {model.vocab_size}"
        )
    needed = token_dtype(model.vocab_size)
    if dtype != needed:
        raise DataMismatchError(
            f"{where}: the shards hold {name} ids; a model of vocab_size {model.vocab_size} reads "
            f"{dtype_name(needed)} (meshstack data prepare with the model's tokenizer writes them)"
        )
    found = index.get("tokenizer_fingerprint")
    if tokenizer_fingerprint is not None and found is not None and found != tokenizer_fingerprint:
        raise DataMismatchError(f"{where}: the shards were made with another tokenizer than the model's")
    return dtype
