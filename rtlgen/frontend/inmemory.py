"""In-memory tf.keras / QKeras model objects -> (model config, weights by layer).

This is the only front-end path that touches a live Keras object (and so TensorFlow, which
the caller has already imported); it uses only the model's public ``to_json()``, ``layers``
and each layer's ``weights``, then hands the same data structures as the file readers to
`rtlgen.frontend.keras_config.build_graph`.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np

from rtlgen.quant.errors import ModelFileError, RtlgenError

from .hdf5 import LayerWeights, weight_short_name
from .keras_config import MAX_NESTED_MODELS


def is_keras_model(obj: Any) -> bool:
    return hasattr(obj, "to_json") and hasattr(obj, "layers") and hasattr(obj, "get_weights")


def config_and_weights(model: Any) -> tuple[dict[str, Any], dict[str, LayerWeights]]:
    try:
        with warnings.catch_warnings():
            # QKeras serializes quantizers through keras.constraints.serialize, which warns.
            warnings.simplefilter("ignore")
            config = json.loads(model.to_json())
    except Exception as exc:  # noqa: BLE001 - any Keras failure here is the user's model state
        raise RtlgenError(
            f"cannot serialize the in-memory model ({type(exc).__name__}: {exc}); build it "
            "(give it an input shape) before converting"
        ) from None
    weights: dict[str, LayerWeights] = {}
    for layer in _leaf_layers(model):
        named: LayerWeights = {}
        for variable in layer.weights:
            # Keras 2: "conv/kernel:0"; Keras 3 / tf-keras >= 2.16 may give just "kernel".
            short = weight_short_name(getattr(variable, "path", None) or variable.name)
            if short in named:
                raise ModelFileError(f"layer '{layer.name}' has two weights named '{short}'")
            named[short] = np.asarray(variable.numpy())
        weights[layer.name] = named
    return config, weights


def _leaf_layers(model: Any, depth: int = 0) -> list[Any]:
    """The layers of ``model``, each nested model (a Sequential or Functional used as a
    layer) replaced by its own layers, as `keras_config.model_layers` inlines them."""
    layers = []
    for layer in model.layers:
        if is_keras_model(layer) and depth < MAX_NESTED_MODELS:
            layers.extend(_leaf_layers(layer, depth + 1))
        else:
            layers.append(layer)
    return layers

