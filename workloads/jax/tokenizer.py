"""A byte-level tokenizer: every UTF-8 byte is a token, so it needs no vocabulary file or download."""

from __future__ import annotations

import numpy as np

PAD, BOS, EOS, UNK = 256, 257, 258, 259
VOCAB_SIZE = 260


def encode(text: str, bos: bool = False, eos: bool = False) -> np.ndarray:
    ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)
    parts = [np.array([BOS], np.uint16)] if bos else []
    parts.append(ids)
    if eos:
        parts.append(np.array([EOS], np.uint16))
    return np.concatenate(parts) if len(parts) > 1 else ids


def decode(ids: np.ndarray | list[int]) -> str:
    data = bytes(int(i) for i in ids if 0 <= int(i) < 256)
    return data.decode("utf-8", errors="replace")
