"""Float weights of any magnitude (negative integer bits for small weights), the warning when
a layer's weights still quantize to mostly zeros, and the too-wide-type error that names the
layer, the width and the remedies (issue 20)."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.frontend import read_model
from rtlgen.passes import PrecisionConfig, auto_type, lower
from rtlgen.quant.errors import RtlgenError, RtlgenWarning
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import predict
from tests.models import exact_inputs, layer_entry, sequential_config, write_full_h5

from .cli_run import rtlgen


def _dense_model(tmp_path, kernels: list[np.ndarray], name="m"):
    layers, weights = [], {}
    for k, kernel in enumerate(kernels):
        layer = f"d{k}"
        config = {"name": layer, "units": kernel.shape[1], "activation": "linear"}
        layers.append(layer_entry("Dense", config))
        weights[layer] = {"kernel": kernel, "bias": np.zeros(kernel.shape[1], np.float32)}
    config = sequential_config(layers, (kernels[0].shape[0],))
    return write_full_h5(tmp_path / f"{name}.h5", config, weights)


@pytest.mark.parametrize(
    "peak,frac", [(3e-6, 33), (0.3, 16), (0.5, 15), (0.99, 15), (1.0, 14), (40.0, 9)]
)
def test_auto_type_gives_small_weights_fractional_bits(peak, frac):
    assert auto_type(np.array([peak, -peak / 3]), 16) == FixedType(16, frac, True)
    m = FixedType(16, frac, True).quantize(np.array([peak]))
    assert 2**14 <= abs(int(m[0])) <= 2**15 - 1  # full precision, no saturation


def test_layer_of_tiny_weights_is_not_all_zeros(tmp_path):
    rng = np.random.default_rng(0)
    kernel = (rng.normal(0, 1, (6, 4)) * 1e-6).astype(np.float32)
    # results with 40 fractional bits: the default 10 would round these outputs to 0 too
    graph = lower(read_model(_dense_model(tmp_path, [kernel])), PrecisionConfig(result_frac=40))
    w = graph.nodes[1].weights
    assert np.count_nonzero(w.mantissa) == kernel.size
    assert np.max(np.abs(w.type.to_float(w.mantissa) - kernel)) <= w.type.step / 2
    assert w.type.step < 1e-9  # 16 significant bits of weights below 1e-5
    x = exact_inputs((6,), 16, 1)
    y = predict(graph, x)
    want = x.astype(np.float64) @ kernel.astype(np.float64)
    assert np.count_nonzero(y) == y.size
    np.testing.assert_allclose(y, want, rtol=0, atol=np.abs(want).max() * 2**-12)


def test_weights_rounding_to_zero_warn_once_naming_the_layer(tmp_path):
    rng = np.random.default_rng(1)
    kernel = (rng.normal(0, 1, (8, 5)) * 1e-3).astype(np.float32)
    kernel[0, 0] = 4e4  # one huge weight: the others fall below the 16-bit type's step
    ok = rng.normal(0, 0.5, (5, 3)).astype(np.float32)
    path = _dense_model(tmp_path, [kernel, ok])
    with pytest.warns(RtlgenWarning) as record:
        lower(read_model(path))
    (warning,) = [w for w in record if issubclass(w.category, RtlgenWarning)]
    text = str(warning.message)
    assert "layer 'd0'" in text and "39 of its 40" in text and "\n" not in text
    result = rtlgen("inspect", path)
    assert result.returncode == 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "layer 'd0'" in lines[0]


def test_too_wide_type_names_the_layer_the_width_and_the_remedies(tmp_path):
    # QKeras keeps unquantized results exact: each layer adds ~10 bits until none fits
    kernels = [np.full((16, 16), 300.0, np.float32) for _ in range(6)]
    layers, weights = [], {}
    for k, kernel in enumerate(kernels):
        config = {
            "name": f"q{k}",
            "units": 16,
            "activation": "linear",
            "kernel_quantizer": "quantized_bits(10,9,alpha=1)",
        }
        layers.append(layer_entry("QDense", config, module="qkeras.qlayers"))
        weights[f"q{k}"] = {"kernel": kernel, "bias": np.zeros(16, np.float32)}
    path = write_full_h5(tmp_path / "wide.h5", sequential_config(layers, (16,)), weights)
    with pytest.raises(RtlgenError) as info:
        lower(read_model(path))
    text = str(info.value)
    assert "\n" not in text and text.startswith("layer 'q")
    for words in ("bit fixed-point type", "--calibrate", "--config", "--input-type"):
        assert words in text
    result = rtlgen("inspect", path)
    assert result.returncode == 2 and result.stderr.count("\n") <= 2
    assert "--calibrate" in result.stderr.splitlines()[-1]
