"""cocotb testbenches, stream drivers/monitors and the Verilator runner."""
