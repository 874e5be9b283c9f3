"""What a model costs to deploy, all known from the built model before any training: its
parameters, its multiply-adds per image, and its latency on this machine (ms an image at batch
1, and images/s at batch 256: each the median of repeated timed calls of the compiled forward
pass, after a warm-up). Bounds on them (``Bound``) are the constraints of a sweep: a
configuration outside them need not be trained.

The names and the bound arithmetic import no Keras (the spec's checks use them); ``measure``
imports it on first use.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# cost -> what it is (its unit); the names a spec's ``constraints`` key takes and the record's
# ``cost/<name>`` metrics. images_per_s is the one to keep above a bound (``min``).
COSTS = {
    "params": "parameters",
    "macs": "multiply-adds per image",
    "latency_ms": "ms per image at batch 1 (median of 5)",
    "images_per_s": "images/s at batch 256 (median of 5)",
    "size_mb": "MB of the saved .keras file (weights, no optimizer state)",
}
PREFIX = "cost/"
LATENCY_BATCH, THROUGHPUT_BATCH = 1, 256


@dataclass(frozen=True)
class Bound:
    """A cost's allowed range: at least ``min``, at most ``max`` (None: no bound that side)."""

    min: float | None = None
    max: float | None = None

    def violation(self, value: float) -> float:
        """How far ``value`` is outside, relative to the bound it breaks (0.25: 25% over its
        max); 0 or less inside (Optuna's convention for a constraint: <= 0 is feasible)."""
        over = [] if self.max is None else [(value - self.max) / max(abs(self.max), 1e-12)]
        under = [] if self.min is None else [(self.min - value) / max(abs(self.min), 1e-12)]
        return max(over + under)

    def describe(self) -> str:
        return " and ".join([f">= {self.min:g}"] * (self.min is not None)
                            + [f"<= {self.max:g}"] * (self.max is not None))


def violations(costs: Mapping[str, float], bounds: Mapping[str, Bound]) -> list[str]:
    """Each bound ``costs`` breaks, said for the record ("params 120,000 > max 100,000")."""
    out = []
    for name, b in bounds.items():
        v = costs.get(name)
        if v is not None and b.violation(v) > 0:
            side = (f"> max {b.max:,g}" if b.max is not None and v > b.max
                    else f"< min {b.min:,g}")
            out.append(f"{name} {v:,.4g} {side}")
    return out


def constraint_values(costs: Mapping[str, float], bounds: Mapping[str, Bound]) -> list[float]:
    """One number per bound, in the bounds' order (<= 0: met), for Optuna's constraints."""
    return [b.violation(costs[name]) if name in costs else 0.0 for name, b in bounds.items()]


def combined(members: list[Mapping[str, float]], views: int = 1) -> dict[str, float]:
    """The costs of averaging ``members``' predictions over ``views`` test-time views of each
    image: parameters and file sizes add; multiply-adds and latency add and multiply by the
    views; throughput is the harmonic sum, divided by the views."""
    out: dict[str, float] = {}
    for k in ("params", "size_mb"):
        if all(k in m for m in members):
            out[k] = sum(m[k] for m in members)
    for k in ("macs", "latency_ms"):
        if all(k in m for m in members):
            out[k] = views * sum(m[k] for m in members)
    if all(m.get("images_per_s") for m in members):
        out["images_per_s"] = 1.0 / (views * sum(1.0 / m["images_per_s"] for m in members))
    return out


def macs(model: Any) -> int:
    """Multiply-adds of one image through ``model``: for each layer with weights that multiply
    (convolutions, depthwise and dense), its kernel's size times the positions it is applied at
    (its output's spatial size). Batch norm, pooling and activations are not counted."""
    from fmnist.compat import flatten_layers

    total = 0
    for layer in flatten_layers(model):
        kernels = [getattr(layer, k, None) for k in ("kernel", "depthwise_kernel",
                                                     "pointwise_kernel")]
        kernels = [k for k in kernels if k is not None]
        if not kernels:
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # a layer used twice, or never called
            continue
        positions = math.prod(int(d) for d in shape[1:-1]) if len(shape) > 2 else 1
        total += positions * sum(math.prod(int(d) for d in k.shape) for k in kernels)
    return int(total)


def _median_s(call, x, repeats: int, min_s: float) -> float:
    """Median seconds of one ``call(x)``: ``repeats`` timings, each of enough calls to last
    ``min_s`` (set from a first timed call)."""
    t0 = time.perf_counter()
    call(x)
    once = max(time.perf_counter() - t0, 1e-6)
    n = max(1, min(500, int(min_s / once)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            call(x)
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def latency(model: Any, repeats: int = 5, min_s: float = 0.05) -> dict[str, float]:
    """``latency_ms`` (batch 1) and ``images_per_s`` (batch 256) of ``model``'s compiled
    inference pass on this machine's threads as set: medians of ``repeats`` timings after three
    warm-up calls."""
    from fmnist.runtime import tf

    shape = tuple(int(d) for d in model.inputs[0].shape[1:])

    @tf.function(reduce_retracing=True)
    def forward(x):
        return model(x, training=False)

    def call(x):
        forward(x).numpy()  # waits for the result

    out = {}
    for batch, key in ((LATENCY_BATCH, "latency_ms"), (THROUGHPUT_BATCH, "images_per_s")):
        x = tf.zeros((batch, *shape), tf.float32)
        for _ in range(3):
            call(x)
        s = _median_s(call, x, repeats, min_s)
        out[key] = s * 1000.0 / batch if key == "latency_ms" else batch / s
    return out


def size_mb(model: Any) -> float:
    """MB of ``model`` saved as a ``.keras`` file, as it would be deployed (before it is
    compiled: no optimizer state)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.stat().st_size / 1e6


def measure(model: Any, timed: bool = True) -> dict[str, float]:
    """Every cost of ``COSTS`` (the latencies only where ``timed``)."""
    out: dict[str, float] = {"params": float(model.count_params()), "macs": float(macs(model)),
                             "size_mb": size_mb(model)}
    if timed:
        out.update(latency(model))
    return out
