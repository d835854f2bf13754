"""Speed of the bit-exact integer reference: 10,000 SVHN-size images (32x32x3) through the
paper's CNN. Issue target: under a minute on this 2-core machine.

    python benchmarks/bench_reference.py        # writes benchmarks/results/reference_speed.json
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from svhn_models import svhn_model_files

from rtlgen.api import load_model
from rtlgen.datasets import synthetic_svhn
from rtlgen.quant.reference import predict

RESULTS = Path(__file__).parent / "results"


def main(n: int = 10_000) -> dict:
    json_path, weights_path = svhn_model_files(bits=6, sparsity=0.5)
    graph = load_model(json_path, weights=weights_path, input_type="fixed<16,6>")
    x, _ = synthetic_svhn(n, seed=1)
    predict(graph, x[:64])  # warm-up
    start = time.perf_counter()
    y = predict(graph, x)
    seconds = time.perf_counter() - start
    result = {
        "benchmark": "reference_speed",
        "model": "SVHN CNN (arXiv 2101.05108), 6-bit QKeras, 50% pruned, random weights",
        "images": n,
        "seconds": round(seconds, 2),
        "images_per_second": round(n / seconds, 1),
        "target_seconds": 60,
        "output_shape": list(y.shape),
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reference_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{n} images in {seconds:.1f} s ({n / seconds:,.0f} images/s), target < 60 s")
    return result


if __name__ == "__main__":
    main()
