"""Input processors other than tokenizers (images)."""
from core.processing.image import AutoImageProcessor, ImageProcessor

__all__ = ["AutoImageProcessor", "ImageProcessor"]
