"""What a checkpoint folder is, wherever it lies (a local path, file://, s3:// or gs://), and what the server
and the trainer load from it:

- a Hugging Face model folder (config.json, *.safetensors, tokenizer.json, tokenizer_config.json): read
  by workloads/jax/hf_config.py and hf_weights.py, its tokenizer through the tokenizers library, every part checked;
- meshstack's own checkpoints (orbax steps with checksum manifests, workloads/jax/checkpoint.py): the
  trainer writes the model's shape beside them (meshstack-model.json) and, when it started from a
  Hugging Face folder, that folder's tokenizer files (tokenizer/), so a server needs nothing else.

A remote Hugging Face folder is copied to a local cache first (only the files a model folder holds);
orbax reads remote checkpoints itself. `export` writes a meshstack checkpoint out as a Hugging Face
folder that transformers and vLLM load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from meshstack.core.model_config import ModelConfig
from meshstack.workloads.jax import hf_config, hf_weights
from meshstack.workloads.jax.storage import REMOTE, filesystem
from meshstack.workloads.jax.tokenization import (
    BYTE_CHAT_TEMPLATE,
    TOKENIZER_FILES,
    ByteTokenizer,
    Tokenizer,
    TokenizerError,
    byte_level_tokenizer_json,
    load_hf_tokenizer,
)

MODEL_FILE = "meshstack-model.json"  # beside a meshstack checkpoint's steps: the model's shape and tokenizer
TOKENIZER_DIR = "tokenizer"
CACHE_ENV = "MESHSTACK_MODEL_CACHE"
FOLDER_SUFFIXES = (".json", ".safetensors", ".jinja", ".model", ".txt")


def uri_of(location: str) -> str:
    """A path or URI as a URI: a bare path becomes file://."""
    if urlparse(location).scheme in ("file", *REMOTE):
        return location
    return Path(location).resolve().as_uri()


def is_hf_folder(uri: str) -> bool:
    fs, root = filesystem(uri_of(uri))
    return bool(fs.exists(f"{root.rstrip('/')}/{hf_config.CONFIG}"))


def local_folder(uri: str) -> Path:
    """The folder on this machine: itself for a local one; for s3:// or gs://, a copy of the files a model
    folder holds in the model cache ($MESHSTACK_MODEL_CACHE, else ~/.cache/meshstack/models)."""
    uri = uri_of(uri)
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    fs, root = filesystem(uri)
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "meshstack" / "models")
    target = cache / hashlib.sha256(uri.encode()).hexdigest()[:16]
    target.mkdir(parents=True, exist_ok=True)
    for entry in fs.ls(root.rstrip("/"), detail=True):
        name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        if entry.get("type") != "file" or not name.endswith(FOLDER_SUFFIXES):
            continue
        local = target / name
        if not local.exists() or local.stat().st_size != entry.get("size"):
            fs.get(entry["name"], str(local))
    return target


@dataclass
class LoadedModel:
    cfg: ModelConfig
    params: dict[str, Any]
    tokenizer: Tokenizer
    source: str


def check_tokenizer(tok: Tokenizer, cfg: ModelConfig, where: str) -> None:
    """A tokenizer fits a model when every id it makes, and every id that ends a completion, has a row."""
    if tok.vocab_size > cfg.vocab_size:
        raise TokenizerError(
            f"{where}: the tokenizer has {tok.vocab_size} tokens; the model's vocab_size is {cfg.vocab_size}"
        )
    outside = sorted(i for i in tok.eos_ids if not 0 <= i < cfg.vocab_size)
    if outside:
        raise TokenizerError(
            f"{where}: eos_token_id {outside[0]} is outside the model's vocabulary of {cfg.vocab_size}"
        )


def folder_tokenizer(folder: Path, cfg: ModelConfig, eos: list[int]) -> Tokenizer:
    """tokenizer.json where there is one; the byte tokenizer for a byte-sized model without one."""
    if not (folder / "tokenizer.json").is_file():
        if cfg.vocab_size == ByteTokenizer().vocab_size:
            return ByteTokenizer()
        raise TokenizerError(f"{folder / 'tokenizer.json'}: missing (meshstack reads Hugging Face tokenizers)")
    tok = load_hf_tokenizer(folder, eos)
    check_tokenizer(tok, cfg, str(folder / "tokenizer.json"))
    return tok


def load_hf_folder(uri: str, with_tokenizer: bool = True) -> LoadedModel:
    """A Hugging Face folder's model, weights and tokenizer, each checked (hf_config.ModelFolderError,
    TokenizerError: one line naming the file and the key or tensor)."""
    folder = local_folder(uri)
    if not (folder / hf_config.CONFIG).is_file():
        raise FileNotFoundError(f"{folder / hf_config.CONFIG}: missing (not a Hugging Face model folder)")
    cfg, raw = hf_config.read_config(folder)
    eos = hf_config.model_eos(folder, raw)
    tok: Tokenizer = folder_tokenizer(folder, cfg, eos) if with_tokenizer else ByteTokenizer()
    params = hf_weights.read_weights(folder, cfg)
    return LoadedModel(cfg, params, tok, uri)


# --- meshstack's own checkpoints -------------------------------------------------------------------


def write_model_file(checkpoint_uri: str, cfg: ModelConfig, tokenizer_from: Path | None) -> None:
    """The model's shape beside the steps and, for a model started from a Hugging Face folder, its
    tokenizer files: what `meshstack serve` and `meshstack export` read (process 0, at the start)."""
    fs, root = filesystem(checkpoint_uri)
    base = root.rstrip("/")
    fs.makedirs(base, exist_ok=True)
    tokenizer_from = (
        tokenizer_from if tokenizer_from is not None and (tokenizer_from / "tokenizer.json").is_file() else None
    )
    if tokenizer_from is not None:
        fs.makedirs(f"{base}/{TOKENIZER_DIR}", exist_ok=True)
        for name in TOKENIZER_FILES:
            if (tokenizer_from / name).is_file():
                fs.put(str(tokenizer_from / name), f"{base}/{TOKENIZER_DIR}/{name}")
        for name in ("config.json",):  # its eos_token_id ends completions
            fs.put(str(tokenizer_from / name), f"{base}/{TOKENIZER_DIR}/source-{name}")
    body = {"model": cfg.model_dump(mode="json"), "tokenizer": TOKENIZER_DIR if tokenizer_from else "bytes"}
    with fs.open(f"{base}/{MODEL_FILE}", "w") as f:
        json.dump(body, f, indent=1, sort_keys=True)


def read_model_file(checkpoint_uri: str) -> tuple[ModelConfig, str] | None:
    """(model, tokenizer kind) the trainer recorded beside its checkpoints, or None where it did not."""
    fs, root = filesystem(checkpoint_uri)
    path = f"{root.rstrip('/')}/{MODEL_FILE}"
    if not fs.exists(path):
        return None
    with fs.open(path, "r") as f:
        try:
            body = json.load(f)
            return ModelConfig.model_validate(body["model"]), str(body.get("tokenizer", "bytes"))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise hf_config.ModelFolderError(
                f"{checkpoint_uri}/{MODEL_FILE}: not meshstack's model file ({exc})"
            ) from None


def checkpoint_tokenizer(checkpoint_uri: str, cfg: ModelConfig, kind: str) -> tuple[Tokenizer, Path | None]:
    """The tokenizer a meshstack checkpoint was trained with, and the local folder of its files (None for bytes)."""
    if kind == "bytes":
        return ByteTokenizer(), None
    folder = local_folder(f"{checkpoint_uri.rstrip('/')}/{TOKENIZER_DIR}")
    eos: list[int] = []
    source = folder / "source-config.json"
    if source.is_file():
        eos = hf_config.model_eos(folder, hf_config.read_json(source))
    tok = load_hf_tokenizer(folder, eos)
    check_tokenizer(tok, cfg, str(folder / "tokenizer.json"))
    return tok, folder


# --- export ----------------------------------------------------------------------------------------


def write_byte_tokenizer(out: Path) -> None:
    """The byte tokenizer as tokenizer.json and tokenizer_config.json (its chat template included)."""
    (out / "tokenizer.json").write_text(json.dumps(byte_level_tokenizer_json(), ensure_ascii=False) + "\n")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "chat_template": "{{ bos_token }}" + BYTE_CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def export(
    params: Any,
    cfg: ModelConfig,
    out: Path,
    tokenizer_folder: Path | None,
    eos: list[int],
    bos: int | None,
    max_shard_bytes: int = hf_weights.DEFAULT_SHARD_BYTES,
) -> list[Path]:
    """A Hugging Face folder of the model: config.json, generation_config.json, safetensors, tokenizer."""
    host = {
        **{k: np.asarray(v) for k, v in params.items() if k != "layers"},
        "layers": {k: np.asarray(v) for k, v in params["layers"].items()},
    }
    bad = hf_weights.finite_everywhere(host)
    if bad is not None:
        raise hf_config.ModelFolderError(f"{out}: tensor {bad} holds NaN or infinite values; nothing was written")
    out.mkdir(parents=True, exist_ok=True)
    written = hf_weights.write_weights(out, host, cfg, max_shard_bytes)
    (out / hf_config.CONFIG).write_text(json.dumps(hf_config.config_to_hf(cfg, bos, eos), indent=2) + "\n")
    generation: dict[str, Any] = {"eos_token_id": eos[0] if len(eos) == 1 else eos}
    if bos is not None:
        generation["bos_token_id"] = bos
    (out / hf_config.GENERATION_CONFIG).write_text(json.dumps(generation, indent=2) + "\n")
    if tokenizer_folder is None:
        write_byte_tokenizer(out)
    else:
        for name in TOKENIZER_FILES:
            if name != hf_config.GENERATION_CONFIG and (tokenizer_folder / name).is_file():
                shutil.copyfile(tokenizer_folder / name, out / name)
    return [*written, out / hf_config.CONFIG]


# --- what a server loads ---------------------------------------------------------------------------


def restore_params(checkpoint_uri: str, cfg: ModelConfig) -> Any:
    """The newest trustworthy checkpoint's weights (damaged steps are said and skipped); FileNotFoundError
    where there is none yet."""
    import jax

    from meshstack.workloads.jax import checkpoint
    from meshstack.workloads.jax.events import write_event
    from meshstack.workloads.jax.model import init_params

    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
        jax.eval_shape(lambda: init_params(cfg, jax.random.key(0))),
    )
    mngr = checkpoint.manager(checkpoint_uri, read_only=True)
    found = checkpoint.restore_latest_good(
        mngr,
        checkpoint_uri,
        abstract,
        None,
        lambda step, why: write_event({"event": "checkpoint_damaged", "step": step, "reason": why}),
    )
    mngr.close()
    if found is None:
        raise FileNotFoundError(f"no checkpoint at {checkpoint_uri}: train first")
    return found[1]["params"]


def mismatch(declared: ModelConfig, found: ModelConfig) -> str | None:
    """The first key where a declared model (a stack's) is not the one found (a checkpoint's, a folder's);
    a shorter max_position_embeddings is the same model, used on shorter sequences."""
    ours, theirs = declared.model_dump(), found.model_dump()
    for key, value in theirs.items():
        if ours[key] != value and not (key == "max_position_embeddings" and ours[key] <= value):
            return f"model.{key} is {ours[key]!r} but the weights' is {value!r}"
    return None


def load_checkpoint(
    checkpoint_uri: str, default: ModelConfig, declared: ModelConfig | None = None
) -> tuple[LoadedModel, Path | None]:
    """A meshstack checkpoint's model (as the trainer recorded it, else `default`), newest trusted
    weights and tokenizer, with the local folder of the tokenizer's files (None for bytes). A `declared`
    model that is not the recorded one is refused."""
    recorded = read_model_file(checkpoint_uri)
    if recorded is not None and declared is not None and (problem := mismatch(declared, recorded[0])):
        raise hf_config.ModelFolderError(
            f"{checkpoint_uri}/{MODEL_FILE}: {problem}: the workload must declare the model trained"
        )
    cfg, kind = recorded if recorded is not None else (declared or default, "bytes")
    params = restore_params(checkpoint_uri, cfg)
    tok, folder = checkpoint_tokenizer(checkpoint_uri, cfg, kind)
    return LoadedModel(cfg, params, tok, checkpoint_uri), folder


def load_served(checkpoint_uri: str, default: ModelConfig, declared: ModelConfig | None = None) -> LoadedModel:
    """What a server serves from its checkpoint_uri: a Hugging Face folder, or meshstack's checkpoints. A
    `declared` model (a stack's, which sized the server) must be the one the weights hold."""
    if is_hf_folder(checkpoint_uri):
        loaded = load_hf_folder(checkpoint_uri)
        if declared is not None and (problem := mismatch(declared, loaded.cfg)):
            raise hf_config.ModelFolderError(
                f"{checkpoint_uri}/{hf_config.CONFIG}: {problem}: the workload must declare this model"
            )
    else:
        loaded = load_checkpoint(uri_of(checkpoint_uri), default, declared)[0]
    if declared is not None:  # the context the stack sized the server for
        loaded.cfg = loaded.cfg.model_copy(update={"max_position_embeddings": declared.max_position_embeddings})
    return loaded
