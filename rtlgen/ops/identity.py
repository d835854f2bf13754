"""Layers that are the identity at inference (dropout, noise, regularization, Keras 3's
``Identity``, the random image augmentations, which Keras applies in training only: checked
on Keras 3.15's ``predict``): read and dropped by the front-end; no node, no hardware."""

from __future__ import annotations

from rtlgen.frontend.keras_config import KerasLayer, LayerOut, WeightSource
from rtlgen.ops.registry import Op, Shape, register_op


def read_keras_identity(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    return LayerOut([], shape)


@register_op
class IdentityOp(Op):
    name = "identity"
    keras_classes = (
        "ActivityRegularization",
        "AlphaDropout",
        "Dropout",
        "GaussianDropout",
        "GaussianNoise",
        "Identity",
        "RandomBrightness",
        "RandomContrast",
        "RandomFlip",
        "RandomRotation",
        "RandomTranslation",
        "RandomZoom",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
    )
    from_keras = staticmethod(read_keras_identity)
