"""ConvNeXT: a convolutional net with Transformer-style blocks (depthwise 7x7, LayerNorm, MLP)."""
