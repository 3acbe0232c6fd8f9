"""The planner's presets build: each Llama preset's shape instantiated abstractly (jax.eval_shape) as
meshstack's model has the parameter count its paper or model card publishes, and sizing counts the
same; GPT-3, which is no Llama, is refused by name rather than built wrong."""

from __future__ import annotations

import math

import jax
import pytest

from meshstack.core import sizing
from meshstack.core.sizing import PRESETS
from meshstack.workloads.jax.model import init_params

LLAMA = sorted(name for name, model in PRESETS.items() if model.family == "llama")


@pytest.mark.parametrize("name", LLAMA)
def test_each_llama_preset_builds_with_its_published_parameter_count(name: str) -> None:
    preset = PRESETS[name]
    cfg = sizing.model_config(preset)
    shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    built = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
    assert built == pytest.approx(preset.params, rel=0.005), f"{name}: {built:,} built, {preset.params:,.0f} published"
    assert cfg.param_count() == built
    assert sizing.of_model(cfg).kv_heads == preset.kv_heads
    assert "lm_head" in shapes, "Llama's output layer is its own"


def test_grouped_query_attention_shrinks_the_kv_cache_by_the_group() -> None:
    llama3 = sizing.of_model(sizing.model_config(PRESETS["llama-3-70b"]))
    assert llama3.kv_bytes_per_token(2) == 2 * 80 * 8 * 128 * 2  # 320 KiB a token, not 2.5 MiB
    assert sizing.kv_cache_rows(llama3, 8192, 2, 64, 10) == 10 * 2**30 // (320 * 1024 * 8192)


def test_a_preset_meshstack_cannot_build_is_refused_by_name() -> None:
    assert PRESETS["gpt-3-175b"].family == "gpt"
    with pytest.raises(ValueError, match="gpt model is not one meshstack's trainer builds"):
        sizing.model_config(PRESETS["gpt-3-175b"])
