"""Swin Transformer: a hierarchical vision transformer with shifted-window attention."""
