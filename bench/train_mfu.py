"""Model FLOPs utilisation of a training step, as a ratio to the matmul peak this process measures.

Both figures come from the same device in the same run: first a large jitted
matmul gives the achievable peak, then timed training steps give the model's
FLOP rate (6N + attention per token). Runs on whatever JAX finds: the CPU here,
a GPU where there is one (bf16 there).

The default shape is a layer of a 1-3B-parameter model (d_model 2048, d_ff 8192): its GEMMs are
the size of the peak's 2048^3 matmul, as a real model's are of the peak its accelerator reaches.
Two layers keep a CPU step to seconds; depth adds the same GEMMs again. On a GPU use
`--d-model 4096 --layers 8 --seq-len 2048 --batch 8 --matmul 8192`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from meshstack.core.contract import JobConfig, TrainConfig
from meshstack.core.model_config import ModelConfig
from meshstack.workloads.jax.data import TokenReader, ensure_corpus
from meshstack.workloads.jax.distributed import Topology
from meshstack.workloads.jax.train import Trainer, compute_dtype


def matmul_peak(n: int, dtype: jnp.dtype, repeats: int) -> float:
    """TFLOP/s of an n x n matmul, best of `repeats`."""
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times) / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--d-model", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--matmul", type=int, default=2048)
    args = parser.parse_args()
    device = jax.devices()[0]
    dtype = compute_dtype("auto", device.platform)
    peak = matmul_peak(args.matmul, dtype, repeats=5)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp, "data").as_uri()
        ensure_corpus(data)
        cfg = JobConfig(
            name="bench",
            data_uri=data,
            checkpoint_uri=Path(tmp, "ckpt").as_uri(),
            model=ModelConfig(
                hidden_size=args.d_model,
                num_hidden_layers=args.layers,
                num_attention_heads=max(args.d_model // 64, 1),
                intermediate_size=4 * args.d_model,
                max_position_embeddings=args.seq_len,
            ),
            train=TrainConfig(steps=args.steps, global_batch=args.batch, seq_len=args.seq_len),
        )
        topology = Topology(0, 1, 1, 1, device.platform)
        cfg = cfg.model_copy(update={"mesh": cfg.mesh.model_copy(update={"data": 1})})
        trainer = Trainer(cfg, topology)
        reader = TokenReader(data, args.seq_len, seed=0)
        params, opt_state = trainer.init()
        batches = [trainer.global_batch(reader.batch(s, args.batch, 1, 0, 1)) for s in range(args.steps + 2)]
        for batch in batches[:2]:
            params, opt_state, loss = trainer.step_fn(params, opt_state, batch)
        loss.block_until_ready()
        times = []
        for batch in batches[2:]:
            start = time.perf_counter()
            params, opt_state, loss = trainer.step_fn(params, opt_state, batch)
            loss.block_until_ready()
            times.append(time.perf_counter() - start)
    step = statistics.median(times)
    flops = cfg.model.train_flops_per_token(args.seq_len) * args.batch * args.seq_len
    achieved = flops / step / 1e12
    print(f"device: {device.device_kind} ({device.platform}), compute dtype {np.dtype(dtype).name}")
    print(f"model: {cfg.model.param_count():,} parameters, batch {args.batch} x {args.seq_len} tokens")
    print(f"matmul peak ({args.matmul}^3): {peak:.3f} TFLOP/s")
    print(f"training step: {step * 1000:.1f} ms median of {len(times)}, {achieved:.3f} TFLOP/s")
    print(f"MFU against the measured peak: {achieved / peak:.2f}")


if __name__ == "__main__":
    main()
