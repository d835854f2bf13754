"""The integer reference model against QKeras's own `model.predict` on the same inputs:
arg-max agreement and max abs error of the logits (inputs exact in the input type).

- demo CNN (QKeras, trained): compared with the logits saved at training time;
- SVHN CNN (QKeras 6-bit, random weights, float BatchNorm after pooling as in the paper):
  BN is computed in fixed point (18-bit scale/shift by default), QKeras in float32, so a few
  values land on the other side of a rounding boundary of the following quantized ReLU.

    python benchmarks/bench_reference_qkeras.py   # writes benchmarks/results/reference_vs_qkeras.json
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
from svhn_models import svhn_model_files

from rtlgen.api import load_model
from rtlgen.quant.reference import predict

RESULTS = Path(__file__).parent / "results"


def compare(name: str, ours: np.ndarray, theirs: np.ndarray) -> dict:
    ours, theirs = ours.reshape(len(ours), -1), theirs.reshape(len(theirs), -1)
    return {
        "model": name,
        "samples": len(ours),
        "argmax_agreement": float(np.mean(np.argmax(ours, 1) == np.argmax(theirs, 1))),
        "exact_logit_rows": float(np.mean(np.all(ours == theirs, axis=1))),
        "max_abs_error": float(np.max(np.abs(ours - theirs))),
    }


def main(n: int = 500) -> list[dict]:
    rows = []
    data = Path(str(resources.files("rtlgen.data")))
    samples = np.load(data / "demo_samples.npz")
    demo = load_model(data / "demo_cnn.json", weights=data / "demo_cnn_weights.h5", input_type=str(samples["input_type"]))
    rows.append(compare("demo CNN (8x8 digits, QKeras 6-bit, 50% pruned)", predict(demo, samples["x"]), samples["keras_out"]))

    import tensorflow as tf

    from rtlgen.datasets import synthetic_svhn
    from rtlgen.quant.training import load_model as load_keras
    from rtlgen.quant.training import logits_model

    json_path, weights_path = svhn_model_files(bits=6, sparsity=0.5)
    graph = load_model(json_path, weights=weights_path, input_type="fixed<16,6>")
    x, _ = synthetic_svhn(n, seed=5)
    x = graph.input.out_type.to_float(graph.input.out_type.quantize(x))  # exact in the input type
    keras_model = logits_model(load_keras(json_path, weights_path))
    theirs = keras_model.predict(tf.constant(x, tf.float32), verbose=0).astype(np.float64)
    rows.append(compare("SVHN CNN (QKeras 6-bit, 50% pruned, float BN, random weights)", predict(graph, x), theirs))
    for row in rows:
        print(f"{row['model']}: arg-max agreement {row['argmax_agreement']:.1%}, exact rows "
              f"{row['exact_logit_rows']:.1%}, max |error| {row['max_abs_error']:.3g}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reference_vs_qkeras.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
