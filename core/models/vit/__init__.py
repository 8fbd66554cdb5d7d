"""ViT, DeiT and ViT-MSN: vision transformers over patch embeddings."""
