"""The machine's limits, measured in the same run as the suites (with the same threads, under
the same load), so every figure can be given as a fraction of what the hardware delivered:

- float32 matmul peak of JAX (`jit(a @ b)`) and of torch (`torch.mm`): n×n×n, 2n³ FLOP per call;
- read bandwidth: the sum of a float32 array far larger than the caches (1 GiB; JAX and torch).

The peak of a framework is its best sample (the machine's limit); medians are kept as well.
"""
from __future__ import annotations

import numpy as np

from scripts.bench import runner
from scripts.bench.registry import Variant


def measure(matmul_n: int, read_bytes: int, warmup: int, repeats: int, log=print) -> dict:
    import jax
    import jax.numpy as jnp
    import torch

    rng = np.random.default_rng(0)
    a = rng.standard_normal((matmul_n, matmul_n), dtype=np.float32)
    b = rng.standard_normal((matmul_n, matmul_n), dtype=np.float32)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    jmatmul = jax.jit(jnp.matmul)
    log(f"  matmul {matmul_n}³ float32: JAX vs torch")
    samples = runner.time_variants([
        Variant("jax", lambda: jmatmul(ja, jb).block_until_ready(), "jax"),
        Variant("torch", lambda: torch.mm(ta, tb), "torch"),
    ], warmup, repeats, log)
    flops = 2.0 * matmul_n ** 3
    matmul = {"n": matmul_n, "flops_per_call": flops, "samples": samples}
    for name, s in samples.items():
        matmul[name] = {"gflops_per_s_best": flops / min(s["wall"]) / 1e9,
                        "gflops_per_s_median": flops / runner.stats(s["wall"])["median"] / 1e9}
    del ja, jb, ta, tb, a, b

    count = read_bytes // 4
    host = np.ones(count, np.float32)
    jhost = jnp.asarray(host)
    thost = torch.from_numpy(host)
    jsum = jax.jit(jnp.sum)
    log(f"  read bandwidth: sum over {read_bytes / 2**30:.3g} GiB float32: JAX vs torch")
    samples = runner.time_variants([
        Variant("jax", lambda: jsum(jhost).block_until_ready(), "jax"),
        Variant("torch", lambda: thost.sum(), "torch"),
    ], warmup, repeats, log)
    read = {"bytes": count * 4, "samples": samples}
    for name, s in samples.items():
        read[name] = {"gb_per_s_best": count * 4 / min(s["wall"]) / 1e9,
                      "gb_per_s_median": count * 4 / runner.stats(s["wall"])["median"] / 1e9}
    del jhost, thost, host
    return {
        "matmul": matmul,
        "read": read,
        "matmul_peak_gflops": {k: matmul[k]["gflops_per_s_best"] for k in ("jax", "torch")},
        "read_bandwidth_gbs": max(read[k]["gb_per_s_best"] for k in ("jax", "torch")),
    }
