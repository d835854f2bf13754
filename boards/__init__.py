"""Vivado packaging and open-toolchain board builds."""
