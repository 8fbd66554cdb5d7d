"""Generated ports of the canonical model families (core/models/*/modeling.py); see scripts/transpile.py."""
