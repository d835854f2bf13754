"""Amaranth hardware blocks, one Component per idea."""
