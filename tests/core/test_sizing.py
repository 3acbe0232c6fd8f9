"""The memory and speed model against published figures, each cited, within a stated tolerance."""

from __future__ import annotations

import pytest

from meshstack.core import sizing
from meshstack.core.sizing import PRESETS

GB = 1e9


def test_weights_of_llama_2_in_bf16_and_int8() -> None:
    # Hugging Face's Llama 2 release notes: 7B needs about 13.5 GB in 16-bit; 70B about 140 GB in 16-bit
    # and about 70 GB in 8-bit.
    assert sizing.weights_bytes(PRESETS["llama-2-7b"], "bf16") / GB == pytest.approx(13.5, rel=0.02)
    assert sizing.weights_bytes(PRESETS["llama-2-70b"], "bf16") / GB == pytest.approx(140, rel=0.02)
    assert sizing.weights_bytes(PRESETS["llama-2-70b"], "int8") / GB == pytest.approx(70, rel=0.02)


def test_mixed_precision_adam_state_is_16_bytes_a_parameter() -> None:
    # Rajbhandari et al. 2020 (ZeRO), section 3.1: a 7.5B-parameter model needs 120 GB for its
    # weights, gradients and Adam state in mixed precision.
    model = sizing.Transformer(7.5e9, 32, 4096, 32, 32, 50257)
    assert sizing.training_state_bytes(model, "bf16") / GB == pytest.approx(120)
    assert sizing.training_state_bytes(model, "fp32") / GB == pytest.approx(120), "4 + 4 + 8 bytes in fp32"


def test_kv_cache_per_token() -> None:
    # Llama 2 7B (multi-head): 2 x 32 layers x 4096 x 2 bytes = 0.5 MiB a token; Llama 2 70B with
    # grouped-query attention (8 KV heads of 128): 2 x 80 x 8 x 128 x 2 = 320 KiB a token.
    assert PRESETS["llama-2-7b"].kv_bytes_per_token() == 512 * 1024
    assert PRESETS["llama-2-70b"].kv_bytes_per_token() == 320 * 1024


def test_training_compute_of_gpt_3() -> None:
    # Brown et al. 2020, appendix D, table D.1: GPT-3 175B took 3.14e23 FLOPs for 300B tokens.
    assert sizing.training_flops(PRESETS["gpt-3-175b"], 300e9) == pytest.approx(3.14e23, rel=0.01)


@pytest.mark.parametrize(("preset", "published_hours"), [("llama-2-7b", 184_320), ("llama-2-70b", 1_720_320)])
def test_gpu_hours_of_llama_2_pretraining_at_one_stated_mfu(preset: str, published_hours: int) -> None:
    """Touvron et al. 2023, table 2: 2T tokens each, on A100-80GB (312 TFLOP/s bf16 dense). One MFU of
    0.4 reproduces both runs' GPU-hours within 10%: the model's speed assumption is a realistic one."""
    seconds = sizing.training_seconds(PRESETS[preset], 2e12, 1, 312, 0.4, recompute=False)
    assert seconds / 3600 == pytest.approx(published_hours, rel=0.10)


def test_activation_memory_matches_the_paper_and_recompute_shrinks_it() -> None:
    # Korthikanti et al. 2022, eq. 2: s b h (34 + 5 a s / h) bytes per layer in 16-bit, no parallelism.
    model = PRESETS["gpt-3-175b"]
    per_layer = 2048 * 1 * 12288 * (34 + 5 * 96 * 2048 / 12288)
    assert sizing.activation_bytes(model, 2048, 1) == pytest.approx(96 * per_layer)
    assert sizing.activation_bytes(model, 2048, 1, tensor=8) == pytest.approx(96 * per_layer / 8)
    assert sizing.activation_bytes(model, 2048, 1, recompute=True) < sizing.activation_bytes(model, 2048, 1) / 10


def test_the_fit_shards_before_it_recomputes_and_reports_what_does_not_fit() -> None:
    small = sizing.training_fit(PRESETS["llama-2-7b"], "bf16", 8, 4096, 1, 80)
    assert (small.recompute, small.tensor) == (False, 2), "a tensor split is tried before recomputing"
    model = PRESETS["llama-2-70b"]
    fit = sizing.training_fit(model, "bf16", 64, 4096, 1, 80)
    assert fit.per_device_gib <= 80 * sizing.USABLE_MEMORY and fit.recompute
    hopeless = sizing.training_fit(model, "bf16", 2, 4096, 1, 80)
    assert hopeless.per_device_gib > 80, "70B cannot train on two GPUs: the smallest footprint is returned"


def test_decoding_is_bound_by_memory_bandwidth_at_small_batches() -> None:
    """One request on an H100 (3.35 TB/s): each token reads 14 GB of 7B weights, about 4 ms a token."""
    model = PRESETS["llama-2-7b"]
    decoding = sizing.serving(model, "bf16", 1, 80, 3350, 989, 512, 256, 60.0, 0.4)
    assert decoding is not None and decoding.batch > 1
    one = sizing.serving(model, "bf16", 1, 80, 3350, 989, 512, 256, 1.2, 0.4)
    assert one is not None
    per_token = (one.latency_s - 2 * model.params * 512 / (989e12 * 0.4)) / 256
    assert per_token == pytest.approx(sizing.weights_bytes(model, "bf16") / 3350e9, rel=0.35)
    assert sizing.serving(PRESETS["llama-2-70b"], "bf16", 1, 80, 3350, 989, 512, 256, 60.0, 0.4) is None, (
        "140 GB of weights do not fit one 80 GB device"
    )
