"""`meshstack data prepare`: text or JSONL tokenized with a model's tokenizer into the token shards the
trainer reads (workloads/jax/data.py), with a manifest of what went in.

Each document is the tokenizer's own encoding of it (`encode`, special tokens as the tokenizer adds
them: a BOS for Llama's) followed by the model's end-of-sequence id, so the trainer learns where
documents end. A .txt file is one document; a .jsonl file holds one JSON object a line, whose text
field (`text` unless told) is a document. Ids are stored uint16 while the model's vocabulary fits in
65,536 ids and uint32 past it. The manifest (index.json) counts documents and tokens per shard and per
input, and records the tokenizer's fingerprint, which the trainer compares with its model's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from meshstack.workloads.jax.data import INDEX, dtype_name, token_dtype
from meshstack.workloads.jax.storage import filesystem
from meshstack.workloads.jax.tokenization import Tokenizer

DEFAULT_SHARD_TOKENS = 1 << 26  # 128 MiB of uint16 ids, 256 MiB of uint32
BATCH_DOCUMENTS = 256


class PrepareError(ValueError):
    """Input that cannot be tokenized: the message names the file and line."""


def documents(path: Path, field: str) -> Iterator[tuple[str, int]]:
    """(document, bytes of input it came from) of a .txt or .jsonl file."""
    if path.suffix == ".jsonl":
        with path.open("rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise PrepareError(f"{path}:{number}: not a JSON object ({exc})") from None
                if not isinstance(record, dict) or not isinstance(record.get(field), str):
                    raise PrepareError(f"{path}:{number}: no string field '{field}' (--field names it)")
                yield record[field], len(raw)
        return
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PrepareError(f"{path}: not UTF-8 text ({exc})") from None
    yield text, path.stat().st_size


def _encode_batch(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    backend = getattr(tok, "backend", None)
    if backend is not None:  # the tokenizers library encodes a batch on all cores
        return [list(e.ids) for e in backend.encode_batch(texts, add_special_tokens=True)]
    return [tok.encode(t) for t in texts]


def prepare(
    inputs: list[Path],
    out_uri: str,
    tok: Tokenizer,
    vocab_size: int,
    eos: int,
    field: str = "text",
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    progress: TextIO | None = sys.stderr,
) -> dict[str, Any]:
    """Write the shards and index.json under out_uri; returns the index."""
    from tqdm import tqdm

    for path in inputs:
        if not path.is_file():
            raise PrepareError(f"{path}: no such file")
        if path.suffix not in (".txt", ".jsonl"):
            raise PrepareError(f"{path}: meshstack data prepare reads .txt and .jsonl files")
    dtype = token_dtype(vocab_size)
    writer = _Shards(out_uri, dtype, shard_tokens)
    sources: list[dict[str, Any]] = []
    total = sum(p.stat().st_size for p in inputs)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="tokenizing", file=progress, disable=progress is None)
    try:
        for path in inputs:
            source: dict[str, Any] = {"path": str(path), "documents": 0, "tokens": 0}
            sources.append(source)
            batch: list[str] = []
            sizes = 0
            for text, size in [*documents(path, field), ("", -1)]:
                if size >= 0:
                    batch.append(text)
                    sizes += size
                if batch and (len(batch) >= BATCH_DOCUMENTS or size < 0):
                    for ids in _encode_batch(tok, batch):
                        row = np.asarray([*ids, eos], np.int64)
                        if row.min() < 0 or row.max() >= vocab_size:
                            raise PrepareError(
                                f"{path}: the tokenizer made id {row.max()}, past vocab_size {vocab_size}"
                            )
                        writer.add(row)
                        source["documents"] += 1
                        source["tokens"] += row.size
                    bar.update(sizes)
                    batch, sizes = [], 0
        writer.flush()
    finally:
        bar.close()
    shards = writer.shards
    index = {
        "tokenizer": tok.name,
        "tokenizer_fingerprint": tok.fingerprint,
        "vocab_size": vocab_size,
        "dtype": dtype_name(dtype),
        "eos_token_id": eos,
        "documents": sum(s["documents"] for s in sources),
        "tokens": sum(s["tokens"] for s in sources),
        "shards": shards,
        "sources": sources,
    }
    with writer.fs.open(f"{writer.root}/{INDEX}", "w") as f:
        json.dump(index, f, indent=1)
    return index


class _Shards:
    """Token rows written out as shards of at most about `shard_tokens` ids, whole documents each."""

    def __init__(self, uri: str, dtype: np.dtype, shard_tokens: int) -> None:
        self.fs, root = filesystem(uri)
        self.root = root.rstrip("/")
        self.fs.makedirs(self.root, exist_ok=True)
        self.dtype, self.limit = dtype, shard_tokens
        self.shards: list[dict[str, Any]] = []
        self.pending: list[np.ndarray] = []
        self.tokens = self.documents = 0

    def add(self, row: np.ndarray) -> None:
        self.pending.append(row)
        self.tokens += row.size
        self.documents += 1
        if self.tokens >= self.limit:
            self.flush()

    def flush(self) -> None:
        if not self.tokens:
            return
        name = f"shard-{len(self.shards):05d}.bin"
        with self.fs.open(f"{self.root}/{name}", "wb") as f:
            for part in self.pending:
                f.write(part.astype(self.dtype).tobytes())
        self.shards.append({"name": name, "tokens": self.tokens, "documents": self.documents})
        self.pending, self.tokens, self.documents = [], 0, 0
