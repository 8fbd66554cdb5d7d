"""Generated ports of the canonical shared layers (core/layers); see scripts/transpile.py."""
