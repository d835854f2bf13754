"""`rtlgen demo`: the bundled model through the whole flow, Verilator included."""

from rich.console import Console

from rtlgen.demo import run_demo


def test_demo_runs_the_whole_flow_bit_exact(tmp_path):
    console = Console(file=open(tmp_path / "log.txt", "w"), width=150)
    summary = run_demo(tmp_path / "demo", simulate=True, console=console)
    assert summary["keras_argmax_agreement"] == 1.0 and summary["keras_max_abs_error"] == 0.0
    assert summary["reference_accuracy"] > 0.85
    text = (tmp_path / "log.txt").read_text()
    assert "bit-exact" in text
    manifest_latency = __import__("json").loads((tmp_path / "demo" / "manifest.json").read_text())["latency_cycles"]
    assert summary["latency"] == manifest_latency
