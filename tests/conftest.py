"""Loaded before any test module: QKeras 0.9, the oracle of most tests, needs ``tf.keras`` to
be Keras 2, which TensorFlow 2.21 (the ``train`` extra on Python 3.12/3.13) gives only with
``TF_USE_LEGACY_KERAS=1`` set before TensorFlow is imported (the tf-keras package); on
Python 3.11's TensorFlow 2.15 nothing is set (no tf-keras there)."""

from rtlgen.quant.training import use_tf_keras

use_tf_keras()
