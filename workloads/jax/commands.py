"""What `meshstack serve`, `meshstack export` and `meshstack data prepare` do, without the command line
(meshstack/cli/workload_commands.py parses it and turns every refusal into one line and exit 2).

Refusals are the exceptions in BAD_INPUT: a model folder, checkpoint, tokenizer or input that cannot be
used, each saying which file and which key, tensor or line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from meshstack.core.contract import ServeConfig, ServeJobConfig
from meshstack.core.model_config import ModelConfig
from meshstack.workloads.jax import hf_config, hf_weights, model_store
from meshstack.workloads.jax.checkpoint import CheckpointError
from meshstack.workloads.jax.data import DataMismatchError
from meshstack.workloads.jax.prepare import PrepareError, prepare
from meshstack.workloads.jax.storage import StorageError
from meshstack.workloads.jax.tokenization import ByteTokenizer, Tokenizer, TokenizerError, load_hf_tokenizer

# ValueError covers hf_config.ModelFolderError, TokenizerError, PrepareError, DataMismatchError and the
# engine's refusals of a serve setting (a KV budget that holds no request, a tensor-parallel degree).
BAD_INPUT = (
    ValueError,
    FileNotFoundError,
    CheckpointError,
    StorageError,
    hf_config.ModelFolderError,
    TokenizerError,
    PrepareError,
    DataMismatchError,
)


def model_name(path: str) -> str:
    """What OpenAI clients name in "model": the folder's name."""
    return path.rstrip("/").rsplit("/", 1)[-1] or "model"


def serve(path: str, serve_config: ServeConfig, name: str | None = None) -> int:
    """Load the folder (a Hugging Face one or meshstack's checkpoints), then serve it until interrupted.
    Nothing listens before the weights have loaded and passed every check."""
    from meshstack.workloads.jax.serving import launcher

    job = ServeJobConfig(name=name or model_name(path), serve=serve_config, checkpoint_uri=model_store.uri_of(path))
    server, state = launcher.build(job)
    return launcher.serve_until_stopped(server, state, lambda: {"url": f"http://{serve_config.bind}:{server.port}/v1"})


def _ids(tok: Tokenizer) -> tuple[list[int], int | None]:
    """(eos ids, bos id) a tokenizer's model ends and starts with."""
    eos = sorted(tok.eos_ids)
    if isinstance(tok, ByteTokenizer):
        from meshstack.workloads.jax import tokenizer as byte_tokenizer

        return eos, byte_tokenizer.BOS
    bos_text = tok.special_tokens.get("bos_token")
    backend: Any = getattr(tok, "backend", None)
    bos = backend.token_to_id(bos_text) if backend is not None and bos_text else None
    return eos, bos


def export(checkpoint: str, out: Path, max_shard_bytes: int = hf_weights.DEFAULT_SHARD_BYTES) -> list[Path]:
    """meshstack's newest trusted checkpoint as a Hugging Face folder (or a Hugging Face folder copied
    through meshstack: what it reads, it writes)."""
    uri = model_store.uri_of(checkpoint)
    if model_store.is_hf_folder(uri):
        loaded = model_store.load_hf_folder(uri)
        folder: Path | None = model_store.local_folder(uri)
    else:
        loaded, folder = model_store.load_checkpoint(uri, ModelConfig())
    if folder is not None and not (folder / "tokenizer.json").is_file():
        folder = None
    eos, bos = _ids(loaded.tokenizer)
    return model_store.export(loaded.params, loaded.cfg, out, folder, eos, bos, max_shard_bytes)


def data_prepare(
    inputs: list[Path], out: str, tokenizer: str, field: str, shard_tokens: int, quiet: bool = False
) -> dict[str, Any]:
    """Tokenize with a model folder's tokenizer (or `bytes`) into shards; the width from the model's
    vocab_size (config.json), else the tokenizer's."""
    if tokenizer == "bytes":
        tok: Tokenizer = ByteTokenizer()
        vocab = tok.vocab_size
    else:
        folder = model_store.local_folder(tokenizer)
        if (folder / hf_config.CONFIG).is_file():
            cfg, raw = hf_config.read_config(folder)
            tok = model_store.folder_tokenizer(folder, cfg, hf_config.model_eos(folder, raw))
            vocab = cfg.vocab_size
        else:
            tok = load_hf_tokenizer(folder)
            vocab = tok.vocab_size
    if not tok.eos_ids:
        raise TokenizerError(f"{tokenizer}: no eos_token to end each document with")
    eos = min(tok.eos_ids)
    return prepare(inputs, model_store.uri_of(out), tok, vocab, eos, field, shard_tokens, None if quiet else sys.stderr)
