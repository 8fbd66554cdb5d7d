"""BEiT: a ViT with relative position biases, layer scale and mean pooling."""
