"""CLIP: a causal text tower and a ViT-style vision tower, projected into one embedding space."""
