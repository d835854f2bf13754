"""Bundled demo model and sample data."""
