"""One module per op kind (see `rtlgen.ops.registry` for what an op module owns).

Importing this package registers every op. Adding a layer kind: a new module here with an
`Op` subclass decorated with `register_op`, imported below, and its tests
(docs/DESIGN.md, "Adding an op").
"""

from rtlgen.ops import (  # noqa: F401
    activation,
    bn_correct,
    concatenate,
    conv,
    conv_transpose,
    cropping,
    dense,
    depthwise_conv,
    flatten,
    hgq1,
    hgq2,
    identity,
    leaky_relu,
    lut_activation,
    merge,
    pool,
    recurrent,
    repeat_vector,
    reshape,
    scale_shift,
    separable_conv,
    threshold,
    upsampling,
    zero_padding,
)
from rtlgen.ops.registry import Op, keras_classes, keras_handler, op_for, ops, register_op

__all__ = ["Op", "keras_classes", "keras_handler", "op_for", "ops", "register_op"]
