"""How repeatable a trial's latency figure is: ``fmnist.costs.latency`` (itself the median of 5
timed runs after a warm-up) called ``--repeats`` times on the same model in one process, for a
few models from LeNet-5 to mini-VGG. Printed per model: each call's latency (ms an image, batch
1) and images/s (batch 256), and the spread, (max - min) / median, of each. Run it alone: a
neighbour's load is in the figure.

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/latency_spread.py
"""

from __future__ import annotations

import argparse
import os
import statistics

MODELS = [("lenet5", "cnn5"), ("skipcnn", "cnn2"), ("fastcnn", "fast"), ("minivgg", "mini_vgg")]


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    from fmnist import costs, models

    print("| model | latency ms, each call | spread | images/s, each call | spread |")
    print("| --- | --- | --- | --- | --- |")
    for family, preset in MODELS:
        m = models.build(family, {}, preset)
        calls = [costs.latency(m) for _ in range(a.repeats)]
        lat = [c["latency_ms"] for c in calls]
        ips = [c["images_per_s"] for c in calls]
        print(f"| {family} {preset} | {', '.join(f'{v:.3f}' for v in lat)} | {spread(lat):.1%} "
              f"| {', '.join(f'{v:,.0f}' for v in ips)} | {spread(ips):.1%} |", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
