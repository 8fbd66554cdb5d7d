"""Input processors other than tokenizers: images, audio, and processors that pair them with a tokenizer."""
from core.processing.image import AutoImageProcessor, ImageProcessor
from core.processing.processor import AutoProcessor, CLIPProcessor, Wav2Vec2Processor, WhisperProcessor

__all__ = ["AutoImageProcessor", "AutoProcessor", "CLIPProcessor", "ImageProcessor", "Wav2Vec2Processor",
           "WhisperProcessor"]
