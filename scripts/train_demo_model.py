"""Train rtlgen's bundled demo network and write it to rtlgen/data/.

The demo is :func:`rtlgen.quant.training.build_demo_cnn` (QConv2D 3x3x8 -> quantized_relu
-> MaxPool 2x2 -> QDense 10 -> softmax; 6-bit weights, ``fixed<6,1>``) trained with
quantization-aware training on scikit-learn's real 8x8 handwritten digits
(:func:`rtlgen.datasets.digits_8x8`, bundled with scikit-learn: no download), with every
kernel pruned to a constant 50 % sparsity. Seeded: re-running it on a CPU reproduces the
files bit for bit (same TensorFlow/QKeras versions).

Outputs (in ``--out-dir``, default ``rtlgen/data``):

- ``demo_cnn.json``: ``model.to_json()`` (Keras 2.15 Sequential; quantizers of QConv2D/
  QDense as dicts, QActivation's as the string ``"quantized_relu(6,2)"``);
- ``demo_cnn_weights.h5``: ``model.save_weights`` in the Keras 2 HDF5 layout;
- ``demo_samples.npz``: ``x`` (N, 8, 8, 1) float32 test images, ``y`` (N,) int64 labels,
  ``keras_out`` (N, 10) float32 QKeras **logits** (the ``output_dense`` output, before the
  softmax) and ``input_type`` (the string ``"fixed<8,1>"``). Every pixel of ``x`` is
  ``v / 16`` with an integer ``v`` in 0..15, so it is exact in ``fixed<8,1>`` (mantissa
  ``8 * v``) and in the narrower ``ufixed<4,0>`` (mantissa ``v``). The logits are exact
  too: all products and sums of this network fit float32's 24-bit mantissa, so
  ``keras_out`` equals the bit-exact fixed-point result.

Re-run (about 20 s on 2 cores, most of it importing TensorFlow)::

    . .venv/bin/activate
    python scripts/train_demo_model.py            # rewrites rtlgen/data/demo_*
    python scripts/train_demo_model.py --out-dir /tmp/demo --epochs 80 --sparsity 0.75
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=REPO / "rtlgen" / "data")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--filters", type=int, default=8)
    parser.add_argument("--samples", type=int, default=32, help="test samples saved to the .npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()
    import tensorflow as tf

    from rtlgen.datasets import DIGITS_8X8_INPUT_TYPE, digits_8x8
    from rtlgen.quant import training

    x_train, y_train = digits_8x8("train", seed=args.seed)
    x_test, y_test = digits_8x8("test", seed=args.seed)
    print(f"sklearn digits: {len(x_train)} train, {len(x_test)} test images, 8x8x1")

    tf.keras.utils.set_random_seed(args.seed)
    model = training.build_demo_cnn(filters=args.filters)
    training.train(
        model,
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        prune_sparsity=args.sparsity,
        validation_data=(x_test, y_test),
        log=None if args.quiet else print,
        seed=args.seed,
    )
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    float_sparsity = training.layer_sparsity(model)
    quantized_sparsity = training.layer_sparsity(model, quantized=True)

    x = x_test[: args.samples]
    y = y_test[: args.samples]
    logits = training.logits_model(model).predict(x, verbose=0).astype(np.float32)
    if not np.array_equal(np.argmax(logits, 1), np.argmax(model.predict(x, verbose=0), 1)):
        raise AssertionError("logits and softmax outputs disagree on the class")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / "demo_cnn.json"
    weights_path = args.out_dir / "demo_cnn_weights.h5"
    samples_path = args.out_dir / "demo_samples.npz"
    training.save_model(model, json_path, weights_path)
    np.savez_compressed(
        samples_path,
        x=x.astype(np.float32),
        y=y.astype(np.int64),
        keras_out=logits,
        input_type=np.array(DIGITS_8X8_INPUT_TYPE),
    )

    weights = sum(
        int(np.prod(layer.kernel.shape)) for layer in model.layers if hasattr(layer, "kernel")
    )
    print(f"test accuracy (QKeras, {len(x_test)} images): {accuracy:.4f}")
    print(f"kernel sparsity (float mask): {fmt(float_sparsity)}")
    print(f"kernel sparsity (quantized):  {fmt(quantized_sparsity)}  of {weights} kernel weights")
    print(
        f"saved samples: {len(x)} (accuracy on them {np.mean(np.argmax(logits, 1) == y):.3f}), input type {DIGITS_8X8_INPUT_TYPE}"
    )
    for path in (json_path, weights_path, samples_path):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def fmt(sparsity: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3f}" for name, value in sparsity.items())


if __name__ == "__main__":
    sys.exit(main())
