"""ViTMAE: masked-autoencoder pre-training of a ViT (random patch masking + a small decoder)."""
