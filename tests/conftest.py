"""Loaded before any test module.

QKeras 0.9, the oracle of most tests, needs ``tf.keras`` to be Keras 2, which TensorFlow 2.21
(the ``train`` extra on Python 3.12/3.13) gives only with ``TF_USE_LEGACY_KERAS=1`` set before
TensorFlow is imported (the tf-keras package); on Python 3.11's TensorFlow 2.15 nothing is set
(no tf-keras there).

Hundreds of tests run the command line as a user does, a ``python -m rtlgen`` subprocess each;
where the environment says ``PYTHONDONTWRITEBYTECODE`` (this machine's does), every one of
them compiled all of rtlgen's modules again (~0.7 s). The tests let Python keep its bytecode
(``__pycache__`` folders, ignored by git), for themselves and the processes they start."""

import os
import sys

from rtlgen.quant.training import use_tf_keras

use_tf_keras()
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False
