"""Tiny Llama-architecture models made here with Hugging Face's transformers itself (random weights,
save_pretrained), and a small BPE tokenizer trained on the shipped corpus with the tokenizers library:
the reference every Hugging Face test checks meshstack against, with nothing downloaded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.workloads.jax import hf_config, hf_weights
from meshstack.workloads.jax.data import training_text
from meshstack.workloads.local.processes import free_port

VOCAB = 384
SPECIAL = ("<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>")
# A template in the style of Llama 3's: the BOS, a header per turn, an end-of-turn token.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' }}\n{{ message['content'] | trim }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}\n{% endif %}"
)
LLAMA3_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}
# (name, LlamaConfig arguments): grouped-query attention, tied and untied, RoPE scaling on and off.
VARIANTS: dict[str, dict[str, Any]] = {
    "gqa-untied": {"num_key_value_heads": 2, "tie_word_embeddings": False},
    "mha-tied": {"num_key_value_heads": 4, "tie_word_embeddings": True},
    "gqa-llama3-rope": {
        "num_key_value_heads": 1,
        "tie_word_embeddings": False,
        "rope_theta": 500000.0,
        "rope_scaling": LLAMA3_SCALING,
    },
    "gqa-linear-rope-tied": {
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
        "rope_scaling": {"rope_type": "linear", "factor": 2.0},
    },
}


def train_tokenizer(folder: Path) -> Path:
    """A byte-level BPE of VOCAB tokens trained on the corpus, saved as transformers saves a fast
    tokenizer (tokenizer.json, tokenizer_config.json with the chat template)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=list(SPECIAL), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    text = training_text()[:200_000]
    tok.train_from_iterator(text.splitlines(), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", chat_template=CHAT_TEMPLATE
    )
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(folder)
    return folder


def tiny_llama(folder: Path, tokenizer: Path | None, seed: int = 0, **overrides: Any) -> Path:
    """A random two-layer Llama saved with save_pretrained (fp32), with the tokenizer's files beside it."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    shard = overrides.pop("max_shard_size", None)
    args: dict[str, Any] = {
        "vocab_size": VOCAB,
        "hidden_size": 64,
        "intermediate_size": 112,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-5,
        # Weights wider than the default 0.02, so the logits of a random model differ enough to rank.
        "initializer_range": 0.15,
        "bos_token_id": 0,
        "eos_token_id": 1,
        **overrides,
    }
    model = LlamaForCausalLM(LlamaConfig(**args)).eval()
    model.save_pretrained(folder, **({"max_shard_size": shard} if shard else {}))
    if tokenizer is not None:
        for f in tokenizer.iterdir():
            shutil.copy(f, folder / f.name)
    return folder


def hf_logits(folder: Path, ids: np.ndarray) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.numpy()


def hf_greedy(folder: Path, prompt: list[int], n: int) -> list[int]:
    """transformers' own greedy continuation (stopping where its generation config says)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]), max_new_tokens=n, do_sample=False, attention_mask=torch.ones(1, len(prompt))
        )
    return [int(t) for t in out[0, len(prompt) :]]


def meshstack(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The meshstack command, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "meshstack.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )


def tensors(folder: Path, file: str = hf_weights.SINGLE) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / file))


def save(folder: Path, named: dict[str, np.ndarray], file: str = hf_weights.SINGLE) -> None:
    from safetensors.numpy import save_file

    save_file(named, str(folder / file), metadata={"format": "pt"})


def edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / hf_config.CONFIG).read_text())
    config.update(changes)
    (folder / hf_config.CONFIG).write_text(json.dumps(config))


def refused_by_serve(folder: Path) -> str:
    """`meshstack serve FOLDER` refusing it: exit 2, one line, nothing served; the line."""
    done = meshstack("serve", str(folder), "--port", "1")  # the refusal comes before any bind
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert "serving" not in done.stdout
    return lines[0]


class Served:
    """`meshstack serve FOLDER` as a process, up once it says it is serving."""

    def __init__(self, folder: Path, *options: str, timeout: float = 240) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "meshstack.cli", "serve", str(folder), "--port", str(self.port), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"meshstack serve exited {self.proc.wait()}: {err}")
            if line.startswith("{") and json.loads(line).get("event") == "serving":
                self.event = json.loads(line)
                return
        self.stop()
        raise AssertionError("meshstack serve did not come up")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
