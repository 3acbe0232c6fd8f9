"""The tokenizers a model is served and trained with: Hugging Face's `tokenizers` library on a model
folder's tokenizer.json, or the 260-symbol byte tokenizer of the demo's tiny model
(workloads/jax/tokenizer.py). Both give the engine the same things: ids for a text, text for a stream of
ids as they come, the ids that end a completion, and the model's chat template.

Chat templates render as transformers renders them (its chat_template_utils): Jinja2's sandbox with
trim_blocks and lstrip_blocks, loop controls, `raise_exception`, `strftime_now` and its `tojson`, with
the tokenizer's special tokens (bos_token, eos_token, ...) as variables. The template comes from
tokenizer_config.json's chat_template (a string, or a list of named ones: "default" is used) or from
chat_template.jinja beside it.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from meshstack.workloads.jax import tokenizer as byte_tokenizer

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
    "generation_config.json",
)
# The byte model's own turns: one block a message, and the assistant's turn opened for it to write.
BYTE_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


class TokenizerError(ValueError):
    """A tokenizer that cannot be read, or that does not fit the model."""


class ChatTemplateError(ValueError):
    """Messages the model's chat template cannot render (it has none, or it refuses them)."""


class Stream(Protocol):
    def step(self, token: int) -> str:
        """The text `token` completes (empty while a character is still partial)."""
        ...

    def flush(self) -> str: ...


class Tokenizer(Protocol):
    name: str
    vocab_size: int  # ids it produces are below this
    eos_ids: frozenset[int]  # ids that end a completion
    pad_id: int  # an id the engine pads with (never attended to)
    banned_ids: frozenset[int]  # ids below vocab_size sampling never picks
    chat_template: str
    special_tokens: dict[str, str]  # what the chat template sees: bos_token, eos_token...
    fingerprint: str  # the same for the same vocabulary and rules
    chat_adds_special: bool  # whether a rendered chat is encoded with the special tokens (its BOS)

    def encode(self, text: str, special: bool = True) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def stream(self) -> Stream: ...


class _ByteStream:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def step(self, token: int) -> str:
        return self._decoder.decode(bytes([token])) if 0 <= token < 256 else ""

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


@dataclass
class ByteTokenizer:
    """The demo's tokenizer: every UTF-8 byte a token, then PAD, BOS, EOS and UNK."""

    name: str = "bytes"
    vocab_size: int = byte_tokenizer.VOCAB_SIZE
    eos_ids: frozenset[int] = frozenset({byte_tokenizer.EOS})
    pad_id: int = byte_tokenizer.PAD
    banned_ids: frozenset[int] = frozenset({byte_tokenizer.PAD})
    chat_template: str = BYTE_CHAT_TEMPLATE
    special_tokens: dict[str, str] = field(default_factory=dict)
    fingerprint: str = "bytes-260"
    chat_adds_special: bool = True  # its template has no BOS: the encoder adds it, as for any prompt

    def encode(self, text: str, special: bool = True) -> list[int]:
        return [int(t) for t in byte_tokenizer.encode(text, bos=special)]

    def decode(self, ids: Iterable[int]) -> str:
        return byte_tokenizer.decode(list(ids))

    def stream(self) -> Stream:
        return _ByteStream()


class _HfStream:
    def __init__(self, tokenizer: Any) -> None:
        from tokenizers.decoders import DecodeStream

        self._tokenizer = tokenizer
        self._stream = DecodeStream(skip_special_tokens=True)

    def step(self, token: int) -> str:
        return self._stream.step(self._tokenizer, token) or ""

    def flush(self) -> str:
        return ""


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or {"content": ...}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


@dataclass
class HfTokenizer:
    """A model folder's tokenizer.json, with its tokenizer_config.json (special tokens, chat template)."""

    name: str
    backend: Any
    vocab_size: int
    eos_ids: frozenset[int]
    pad_id: int
    chat_template: str
    special_tokens: dict[str, str]
    fingerprint: str
    banned_ids: frozenset[int] = frozenset()
    chat_adds_special: bool = False  # templates write their own BOS, as transformers' apply_chat_template takes them

    def encode(self, text: str, special: bool = True) -> list[int]:
        return list(self.backend.encode(text, add_special_tokens=special).ids)

    def decode(self, ids: Iterable[int]) -> str:
        return str(self.backend.decode(list(ids), skip_special_tokens=True))

    def stream(self) -> Stream:
        return _HfStream(self.backend)


def _read_json(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TokenizerError(f"{path}: must be a JSON object")
    return data


def _ids(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


def _template_source(folder: Path, config: dict[str, Any]) -> tuple[str | None, Path]:
    """(the chat template, the file it is in): chat_template.jinja, else tokenizer_config.json's."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        try:
            return jinja.read_text(), jinja
        except UnicodeDecodeError as exc:
            raise TokenizerError(f"{jinja}: not UTF-8 text ({exc})") from None
    where = folder / "tokenizer_config.json"
    template = config.get("chat_template")
    if isinstance(template, str):
        return template, where
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        chosen = named.get("default")
        return (chosen if isinstance(chosen, str) else None), where
    return None, where


def _template(folder: Path, config: dict[str, Any]) -> str | None:
    """The chat template, compiled once here: a template that is not valid Jinja is refused with the
    model, naming its file, not found at the first chat request."""
    source, where = _template_source(folder, config)
    if source is not None:
        try:
            _compiled(source)
        except ChatTemplateError as exc:
            raise TokenizerError(f"{where}: {exc}") from None
    return source


def load_hf_tokenizer(folder: Path, model_eos: Sequence[int] = ()) -> HfTokenizer:
    """tokenizer.json and its config from a model folder; the ids that end a completion are the model's
    (config.json's and generation_config.json's eos_token_id), else the tokenizer's eos_token."""
    from tokenizers import Tokenizer as Backend

    path = folder / "tokenizer.json"
    try:
        backend = Backend.from_file(str(path))
    except Exception as exc:  # the Rust side raises its own exception type on a bad file
        raise TokenizerError(f"{path}: not a tokenizer the tokenizers library reads ({exc})") from None
    config = _read_json(folder, "tokenizer_config.json")
    special_map = _read_json(folder, "special_tokens_map.json")
    special: dict[str, str] = {}
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        text = _token_text(config.get(key)) or _token_text(special_map.get(key))
        if text is not None:
            special[key] = text
    for key, text in special.items():
        if backend.token_to_id(text) is None:
            raise TokenizerError(f"{folder / 'tokenizer_config.json'}: {key} {text!r} is not in tokenizer.json")
    generation = _read_json(folder, "generation_config.json")
    eos = set(model_eos) | set(_ids(generation.get("eos_token_id")))
    if not eos and "eos_token" in special:
        eos = {int(backend.token_to_id(special["eos_token"]) or 0)}  # checked above to be in the vocabulary
    pad = special.get("pad_token") or special.get("eos_token")
    pad_id = backend.token_to_id(pad) if pad is not None else None
    template = _template(folder, config)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return HfTokenizer(
        name=str(folder),
        backend=backend,
        vocab_size=int(backend.get_vocab_size(with_added_tokens=True)),
        eos_ids=frozenset(eos),
        pad_id=int(pad_id) if pad_id is not None else 0,
        chat_template=template or "",
        special_tokens=special,
        fingerprint=f"sha256:{digest}",
    )


def render_chat(tok: Tokenizer, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
    """The prompt the model's chat template makes of the messages, rendered as transformers renders it."""
    import jinja2

    if not tok.chat_template:
        raise ChatTemplateError(
            "this model has no chat template (tokenizer_config.json chat_template): use completions"
        )
    try:
        return str(
            _compiled(tok.chat_template).render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                tools=None,
                documents=None,
                **tok.special_tokens,
            )
        )
    except jinja2.TemplateError as exc:  # the template's own raise_exception("...") among them
        raise ChatTemplateError(f"the model's chat template refused the messages: {exc}") from None


_TEMPLATES: dict[str, Any] = {}


def _compiled(source: str) -> Any:
    if source in _TEMPLATES:
        return _TEMPLATES[source]
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None, sort_keys: bool = False
    ) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        template = env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ChatTemplateError(f"the model's chat template is not valid Jinja: {exc}") from None
    _TEMPLATES[source] = template
    return template


def byte_level_tokenizer_json() -> dict[str, Any]:
    """The byte tokenizer as a tokenizer.json the tokenizers library (and so transformers and vLLM) reads:
    the same ids for the same text, so a model meshstack trained on bytes exports with its tokenizer."""
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, pre_tokenizers, processors

    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    # ByteLevel maps byte b to one printable character; the vocabulary puts each at its byte's id.
    mapping = _bytes_to_unicode()
    vocab = {mapping[b]: b for b in range(256)}
    assert set(vocab) == set(byte_chars)
    backend = Backend(models.BPE(vocab=vocab, merges=[], unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    names = {
        byte_tokenizer.PAD: "<pad>",
        byte_tokenizer.BOS: "<s>",
        byte_tokenizer.EOS: "</s>",
        byte_tokenizer.UNK: "<unk>",
    }
    from tokenizers import AddedToken

    backend.add_special_tokens([AddedToken(names[i], special=True) for i in sorted(names)])
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", byte_tokenizer.BOS)]
    )
    data: dict[str, Any] = json.loads(backend.to_str())
    return data


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-character table, which the tokenizers library's ByteLevel uses."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}
