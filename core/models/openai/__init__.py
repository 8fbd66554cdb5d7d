"""OpenAI GPT (`model_type: openai-gpt`): config (JAX-free), canonical Flax modules, key map."""
from core.models.openai.config import OpenAIGPTConfig

__all__ = ["OpenAIGPTConfig"]
