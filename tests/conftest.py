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

import pytest

from rtlgen.quant.training import use_tf_keras

use_tf_keras()
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


# ---------------------------------------------------------------------------------------
# The default run stays under 5 minutes on two cores: of these parametrized tests (network,
# layout or shape variants of one feature) the first case runs by default and the others
# in the slow set (`-m slow`, which CI runs after the default set).
FIRST_CASE_ONLY = (
    "tests/rtlgen/test_frontend_keras.py::test_every_layout_reads_to_the_same_graph",
    "tests/rtlgen/test_graphs.py::test_dags_are_bit_exact_under_backpressure",
    "tests/rtlgen/test_graphs.py::test_fifo_sizes_are_tight",
    "tests/rtlgen/test_graphs.py::test_dag_timing_is_predicted_cycle_exactly",
    "tests/rtlgen/test_multi_input.py::test_fifo_sizes_are_tight",
    "tests/rtlgen/test_multi_input.py::test_bit_exact_under_independent_input_gaps_and_backpressure",
    "tests/rtlgen/test_multi_input.py::test_latency_and_ii_are_the_modelled_ones",
    "tests/rtlgen/test_multi_input.py::test_qkeras_two_input_model_predicts_exactly_like_qkeras",
    "tests/layers/test_requantize_verilog.py::test_text_module_is_equivalent_to_amaranths",
    "tests/rtlgen/test_keras3.py::test_network_bit_exact_under_backpressure",
    "tests/rtlgen/test_qonnx.py::test_network_bit_exact_under_backpressure",
    "tests/rtlgen/test_qonnx_outputs.py::test_float_output_networks_bit_exact_under_backpressure",
    "tests/rtlgen/test_qonnx_outputs.py::test_per_channel_networks_bit_exact_under_backpressure",
    "tests/rtlgen/test_hgq2.py::test_network_bit_exact_under_backpressure",
    "tests/rtlgen/ops/test_recurrent.py::test_qkeras_recurrent_layers_are_bit_exact",
    "tests/rtlgen/ops/test_recurrent.py::test_eight_bit_qkeras_recurrent_layers_are_bit_exact",
    "tests/rtlgen/ops/test_matvec.py::test_a_dense_sends_its_result_in_beats_the_next_dense_takes_as_they_arrive",
    "tests/rtlgen/ops/test_matvec.py::test_reuse_cap_limits_every_layer_s_steps_per_beat",
    "tests/rtlgen/ops/test_merge.py::test_merge_models_are_bit_exact_in_hardware",
    "tests/rtlgen/ops/test_threshold.py::test_dense_bn_quantizer_is_exact_at_rounding_boundaries",
    "tests/rtlgen/ops/test_zero_padding.py::test_measured_latency_and_ii_equal_the_manifest",
    "tests/rtlgen/ops/test_depthwise_conv.py::test_qkeras_folded_depthwise_batchnorm_predicts_exactly",
    "tests/rtlgen/test_hardware.py::test_conv_network_bit_exact_under_backpressure",
    "tests/rtlgen/test_hardware.py::test_latency_pipeline_fuses_an_mlp_bit_exact_with_predicted_timing",
    "tests/quant/test_reference_qkeras.py::test_quantized_models_are_bit_exact",
    "tests/layers/test_recurrent.py::test_cell_matches_reference_under_backpressure",
    "tests/quant/test_training.py::test_save_and_load_round_trip_both_formats",
    "tests/rtlgen/test_demo.py::test_demo_writes_where_output_says",
    # per-op and per-message variants whose code paths the first case and other default
    # tests share (tests/quant/test_merge.py checks every merge op against Keras by default)
    "tests/rtlgen/ops/test_merge.py::test_merge_models_predict_exactly_like_keras",
    "tests/rtlgen/sweep/test_sweep_cli.py::test_spec_errors_are_one_line_with_exit_code_2",
    "tests/rtlgen/ops/test_threshold.py::test_sign_binary_and_ternary_activations_are_exact",
    "tests/rtlgen/ops/test_bn_correct.py::test_every_input_is_decided_as_the_float_model",
    "tests/rtlgen/test_cli.py::test_predict_says_the_input_type_and_how_many_values_were_rounded_and_saturated",
    "tests/layers/test_bank_verilog.py::test_text_module_is_equivalent_to_amaranths",
    "tests/rtlgen/test_cli_errors.py::test_help_prints_usage_and_exits_0",
    "tests/rtlgen/test_cli_latency.py::test_bad_cap_or_budget_is_one_line_with_exit_code_2",
)
#: single cases moved likewise (their feature has another default test: named beside)
SLOW_CASES = (
    # cocotb + C++ harness on a faulty design (bit-exact and cycle agreement stay default)
    "tests/sim_tb/test_harness_cpp.py::test_faults_get_the_same_report_from_both_harnesses",
    # the CLI's budget on a plan that meets it (test_matvec's budget tests stay default)
    "tests/rtlgen/test_cli_latency.py::test_a_budget_the_default_plan_meets_is_recorded",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    seen = set()
    for item in items:
        base = item.nodeid.split("[", 1)[0]
        if base in FIRST_CASE_ONLY and item.get_closest_marker("slow") is None:
            if base in seen:
                item.add_marker(pytest.mark.slow)
            seen.add(base)
        elif item.nodeid.startswith(SLOW_CASES):
            item.add_marker(pytest.mark.slow)
