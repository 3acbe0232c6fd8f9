"""The model meshstack's trainer and server build, as a workload's spec declares it and the programs read it
(named as Hugging Face's LlamaConfig names it, so a config.json maps onto it). No JAX import here:
validation must not need an accelerator runtime."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from meshstack.core.validation import SpecModel, field_error

# The names meshstack's model fields had before they took Hugging Face's LlamaConfig names: a stack file
# may still use them.
LEGACY_MODEL_FIELDS = {
    "d_model": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "n_kv_heads": "num_key_value_heads",
    "d_ff": "intermediate_size",
    "max_seq_len": "max_position_embeddings",
}


class RopeScaling(SpecModel):
    """RoPE frequency scaling, as Hugging Face's `rope_scaling` holds it: `linear` divides every frequency by
    `factor`; `llama3` (Llama 3.1's) divides the low frequencies by `factor`, keeps the high ones and blends
    between them, by wavelength against `original_max_position_embeddings`."""

    rope_type: Literal["linear", "llama3"] = Field(description="How the frequencies are scaled (see above).")
    factor: float = Field(gt=0, description="What the (low) frequencies are divided by.")
    low_freq_factor: float | None = Field(
        default=None, gt=0, description="llama3: wavelengths beyond original/low_freq_factor are scaled whole."
    )
    high_freq_factor: float | None = Field(
        default=None,
        gt=0,
        description="llama3: wavelengths below original/high_freq_factor are kept; above low_freq_factor.",
    )
    original_max_position_embeddings: int | None = Field(
        default=None, ge=1, description="llama3: the context the model was trained at before scaling."
    )

    @model_validator(mode="after")
    def _check(self) -> RopeScaling:
        if self.rope_type == "llama3":
            for name in ("low_freq_factor", "high_freq_factor", "original_max_position_embeddings"):
                if getattr(self, name) is None:
                    raise field_error(
                        name,
                        "llama3 rope scaling needs low_freq_factor, high_freq_factor and "
                        "original_max_position_embeddings",
                    )
            if self.high_freq_factor <= self.low_freq_factor:  # type: ignore[operator]
                raise field_error("high_freq_factor", "must exceed low_freq_factor")
        return self


class ModelConfig(SpecModel):
    """The decoder meshstack's trainer and server build (workloads/jax/model.py): the Llama family's
    architecture (grouped-query attention, RoPE, RMSNorm, SwiGLU), named as Hugging Face's LlamaConfig
    names it, so a config.json maps onto it key for key. The defaults are the demo's tiny byte-level model."""

    vocab_size: int = Field(
        default=260, ge=2, description="Token ids; 260 for the byte tokenizer (256 bytes, 4 special)."
    )
    hidden_size: int = Field(default=64, ge=8, description="The residual stream's width (the embedding size).")
    num_hidden_layers: int = Field(default=2, ge=1, description="Decoder layers.")
    num_attention_heads: int = Field(
        default=4, ge=1, description="Query heads; they divide hidden_size unless head_dim is given."
    )
    num_key_value_heads: int | None = Field(
        default=None, ge=1, description="Grouped-query attention's key/value heads; num_attention_heads if not given."
    )
    head_dim: int | None = Field(default=None, ge=2, description="hidden_size / num_attention_heads if not given.")
    intermediate_size: int = Field(default=256, ge=8, description="SwiGLU's width.")
    max_position_embeddings: int = Field(default=128, ge=8, description="The longest sequence the model takes.")
    rope_theta: float = Field(default=10000.0, gt=1, description="RoPE's base wavelength.")
    rope_scaling: RopeScaling | None = Field(
        default=None, description="RoPE frequency scaling for a longer context (Llama 3.1's); none if not given."
    )
    rms_norm_eps: float = Field(default=1e-6, gt=0, lt=1, description="RMSNorm's epsilon.")
    tie_word_embeddings: bool = Field(default=True, description="The output layer is the embedding, transposed.")

    @model_validator(mode="before")
    @classmethod
    def _legacy_names(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(k in data for k in LEGACY_MODEL_FIELDS):
            return data
        out = dict(data)
        for old, new in LEGACY_MODEL_FIELDS.items():
            if old in out:
                if new in out:
                    raise field_error(old, f"{old} is the old name of {new}: give one of them")
                out[new] = out.pop(old)
        return out

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise field_error(
                "num_attention_heads",
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}",
            )
        if self.head_size % 2:
            raise field_error(
                "num_attention_heads", f"the head dimension {self.head_size} must be even for rotary embeddings"
            )
        if self.num_attention_heads % self.kv_heads:
            raise field_error(
                "num_key_value_heads",
                f"num_attention_heads {self.num_attention_heads} is not a multiple of num_key_value_heads "
                f"{self.kv_heads}",
            )
        return self

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    def param_count(self, embeddings: bool = True) -> int:
        d, dh, f = self.hidden_size, self.head_size, self.intermediate_size
        attention = d * self.num_attention_heads * dh * 2 + d * self.kv_heads * dh * 2
        per_layer = attention + 3 * d * f + 2 * d
        total = self.num_hidden_layers * per_layer + d
        tables = 1 if self.tie_word_embeddings else 2
        return total + (tables * self.vocab_size * d if embeddings else 0)

    def train_flops_per_token(self, seq_len: int) -> float:
        """Forward and backward FLOPs per token: 6N for the weights plus the attention scores (PaLM, app. B)."""
        width = self.num_attention_heads * self.head_size
        return 6 * self.param_count() + 12 * self.num_hidden_layers * width * seq_len
