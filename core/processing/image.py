"""Image processors: `preprocessor_config.json` → `pixel_values` (batch, channels, height, width).

The ViT / DeiT / CLIP processors of `transformers` (their Pillow backend: `ViTImageProcessorPil`,
`DeiTImageProcessorPil`, `CLIPImageProcessorPil`), step for step: resize with Pillow (float images in [0, 1] go through
uint8 and back, as there), center crop (zero padding when the crop is larger), rescale (in
float64, then float32), normalize per channel. numpy and Pillow only (no JAX, no torch).

    processor = AutoImageProcessor.from_pretrained("path/to/folder")
    batch = processor(images)                 # {"pixel_values": float32 (batch, C, H, W)}
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any, Mapping, Optional, Sequence

import numpy as np

IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING = 0, 1, 2, 3, 4, 5     # PIL.Image.Resampling codes

# Per processor type, the class defaults `transformers` applies to keys a file leaves out.
DEFAULTS: dict[str, dict[str, Any]] = {
    "ViTImageProcessor": dict(do_resize=True, size={"height": 224, "width": 224}, resample=BILINEAR,
                              do_center_crop=None, crop_size=None, do_rescale=True, rescale_factor=1 / 255,
                              do_normalize=True, image_mean=list(IMAGENET_STANDARD_MEAN),
                              image_std=list(IMAGENET_STANDARD_STD), do_convert_rgb=None),
    "DeiTImageProcessor": dict(do_resize=True, size={"height": 256, "width": 256}, resample=BICUBIC,
                               do_center_crop=True, crop_size={"height": 224, "width": 224}, do_rescale=True,
                               rescale_factor=1 / 255, do_normalize=True, image_mean=list(IMAGENET_STANDARD_MEAN),
                               image_std=list(IMAGENET_STANDARD_STD), do_convert_rgb=None),
    "CLIPImageProcessor": dict(do_resize=True, size={"shortest_edge": 224}, resample=BICUBIC, do_center_crop=True,
                               crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
                               do_normalize=True, image_mean=list(OPENAI_CLIP_MEAN), image_std=list(OPENAI_CLIP_STD),
                               do_convert_rgb=True),
}
# Suffixes of the same processors under their other backends' names.
_SUFFIXES = ("Fast", "Pil")


def _base_type(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name[:-len(suffix)] in DEFAULTS:
            return name[:-len(suffix)]
    return name


class ImageProcessorError(ValueError):
    """A processor config or an image the processor cannot handle."""


@dataclasses.dataclass
class ImageProcessor:
    image_processor_type: str = "ViTImageProcessor"
    do_resize: bool = True
    size: Optional[dict] = None
    resample: int = BILINEAR
    do_center_crop: Optional[bool] = None
    crop_size: Optional[dict] = None
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: Optional[Sequence[float] | float] = None
    image_std: Optional[Sequence[float] | float] = None
    do_convert_rgb: Optional[bool] = None
    extra: dict = dataclasses.field(default_factory=dict)

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ImageProcessor":
        data = dict(data)
        kind = _base_type(data.get("image_processor_type", "ViTImageProcessor"))
        if kind not in DEFAULTS:
            raise ImageProcessorError(f"image_processor_type {data.get('image_processor_type')!r} is not supported; "
                                      f"supported: {sorted(DEFAULTS)} (and their Fast / Pil names)")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "image_processor_type"}
        values = dict(DEFAULTS[kind])
        extra = {}
        for key, value in data.items():
            if key in names:
                # Older CLIP files give sizes as ints: size = shortest edge, crop_size = square.
                if key == "size" and isinstance(value, int):
                    value = {"shortest_edge": value}
                elif key == "crop_size" and isinstance(value, int):
                    value = {"height": value, "width": value}
                values[key] = value
            elif key != "image_processor_type":
                extra[key] = value
        processor = cls(image_processor_type=data.get("image_processor_type", kind), **values, extra=extra)
        processor.validate()
        return processor

    @classmethod
    def from_pretrained(cls, folder) -> "ImageProcessor":
        path = pathlib.Path(folder) / "preprocessor_config.json"
        if not path.is_file():
            raise ImageProcessorError(f"{path}: not found; an image model folder needs a preprocessor_config.json")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ImageProcessorError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(data)

    def validate(self) -> None:
        if self.do_resize and not _valid_size(self.size):
            raise ImageProcessorError(f"size {self.size!r}: expected {{'height', 'width'}} or {{'shortest_edge'}}")
        if self.do_center_crop and not (isinstance(self.crop_size, Mapping) and {"height", "width"} <= set(self.crop_size)):
            raise ImageProcessorError(f"crop_size {self.crop_size!r}: expected {{'height': h, 'width': w}}")
        if self.resample not in (NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING):
            raise ImageProcessorError(f"resample {self.resample!r}: expected a PIL resampling code 0..5")
        if self.do_normalize and (self.image_mean is None or self.image_std is None):
            raise ImageProcessorError("do_normalize needs image_mean and image_std")

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out

    def save_pretrained(self, folder) -> pathlib.Path:
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "preprocessor_config.json"
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    # -- processing -------------------------------------------------------------------------------
    def __call__(self, images, return_tensors: Optional[str] = "np", **overrides) -> dict:
        """images: one image or a list (PIL images, or numpy arrays HWC / CHW / HW, uint8 or
        float). Returns {"pixel_values": float32 (batch, channels, height, width)}."""
        if overrides:
            unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
            if unknown:
                raise TypeError(f"unknown processor options: {sorted(unknown)}")
            return dataclasses.replace(self, **overrides)(images, return_tensors)
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors={return_tensors!r}: Rosetta's processor returns numpy ('np'); "
                             "convert with jnp.asarray / torch.as_tensor")
        batch = [self.preprocess_one(image) for image in _as_list(images)]
        shapes = {b.shape for b in batch}
        if return_tensors == "np":
            if len(shapes) > 1:
                raise ImageProcessorError(f"images of different processed shapes {sorted(shapes)}: enable do_resize "
                                          "or do_center_crop to batch them")
            return {"pixel_values": np.stack(batch).astype(np.float32, copy=False)}
        return {"pixel_values": batch}

    def preprocess_one(self, image) -> np.ndarray:
        array = _to_channels_first(image, self.do_convert_rgb)
        if self.do_resize:
            array = resize(array, self.output_size(array), self.resample)
        if self.do_center_crop:
            array = center_crop(array, int(self.crop_size["height"]), int(self.crop_size["width"]))
        if self.do_rescale:
            array = (array.astype(np.float64) * self.rescale_factor).astype(np.float32)
        if self.do_normalize:
            array = normalize(array, self.image_mean, self.image_std)
        return array

    def output_size(self, array: np.ndarray) -> tuple[int, int]:
        size = self.size
        height, width = array.shape[-2:]
        if "height" in size and "width" in size:
            return int(size["height"]), int(size["width"])
        short = int(size["shortest_edge"])
        longest = size.get("longest_edge")
        if longest:
            return _size_with_aspect_ratio((height, width), short, int(longest))
        # transformers' get_resize_output_image_size(default_to_square=False)
        small, large = (width, height) if width <= height else (height, width)
        new_small, new_large = short, int(short * large / small)
        return (new_large, new_small) if width <= height else (new_small, new_large)


class AutoImageProcessor:
    """`AutoImageProcessor.from_pretrained(folder)`: the processor its preprocessor_config.json names."""

    def __init__(self):
        raise TypeError("AutoImageProcessor is a factory: use AutoImageProcessor.from_pretrained(folder)")

    @staticmethod
    def from_pretrained(folder) -> ImageProcessor:
        return ImageProcessor.from_pretrained(folder)


# -- the steps ---------------------------------------------------------------------------------------

def _valid_size(size) -> bool:
    return isinstance(size, Mapping) and ({"height", "width"} <= set(size) or "shortest_edge" in size)


def _size_with_aspect_ratio(image_size, size: int, max_size: int) -> tuple[int, int]:
    height, width = image_size
    if max_size is not None:
        min_original, max_original = float(min(height, width)), float(max(height, width))
        if max_original / min_original * size > max_size:
            size = int(round(max_size * min_original / max_original))
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def _as_list(images) -> list:
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    return [images]


def _is_pil(image) -> bool:
    try:
        import PIL.Image
    except ImportError:   # pragma: no cover
        return False
    return isinstance(image, PIL.Image.Image)


def _to_channels_first(image, do_convert_rgb: Optional[bool]) -> np.ndarray:
    """PIL (always HWC) or numpy (channels inferred: a leading axis of 1, 3 or 4 is channels,
    else a trailing one) → (channels, height, width)."""
    if _is_pil(image):
        if do_convert_rgb and image.mode != "RGB":
            image = image.convert("RGB")
        array = np.array(image)
        if array.ndim == 2:
            return array[None]
        return np.moveaxis(array, -1, 0)
    if hasattr(image, "numpy") and not isinstance(image, np.ndarray):
        image = image.numpy()
    array = np.asarray(image)
    if do_convert_rgb:
        array = _to_channels_first(_pil_from(array), True)
        return array
    if array.ndim == 2:
        return array[None]
    if array.ndim != 3:
        raise ImageProcessorError(f"an image must be 2-D or 3-D, got shape {array.shape}")
    if array.shape[0] in (1, 3, 4):
        return array
    if array.shape[-1] in (1, 3, 4):
        return np.moveaxis(array, -1, 0)
    raise ImageProcessorError(f"cannot tell the channel axis of an image of shape {array.shape}")


def _pil_from(array: np.ndarray):
    import PIL.Image
    chw = _to_channels_first(array, None)
    hwc = np.moveaxis(chw, 0, -1)
    hwc = hwc[..., 0] if hwc.shape[-1] == 1 else hwc
    if hwc.dtype != np.uint8:
        if _float_needs_255(hwc):
            hwc = (hwc.astype(np.float64) * 255).astype(np.float32)
        hwc = hwc.astype(np.uint8)
    return PIL.Image.fromarray(hwc)


def _float_needs_255(image: np.ndarray) -> bool:
    """transformers' `_rescale_for_pil_conversion`: float images in [0, 1] go to uint8 via *255."""
    if image.dtype == np.uint8:
        return False
    if np.allclose(image, image.astype(int)):
        if np.all(image >= 0) and np.all(image <= 255):
            return False
        raise ImageProcessorError(f"image values outside [0, 255] ({image.min()}..{image.max()}) cannot be resized "
                                  "with Pillow")
    if np.all(image >= 0) and np.all(image <= 1):
        return True
    raise ImageProcessorError(f"float image values outside [0, 1] ({image.min()}..{image.max()}) cannot be resized "
                              "with Pillow")


def resize(array: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """(C, H, W) → (C, height, width) with Pillow, through uint8 as transformers does."""
    import PIL.Image
    rescaled = _float_needs_255(array)
    hwc = np.moveaxis(array, 0, -1)
    hwc = hwc[..., 0] if hwc.shape[-1] == 1 else hwc
    if rescaled:
        hwc = (hwc.astype(np.float64) * 255).astype(np.float32)
    pil = PIL.Image.fromarray(hwc.astype(np.uint8))
    height, width = size
    out = np.array(pil.resize((width, height), resample=resample))
    out = out[..., None] if out.ndim == 2 else out
    out = np.moveaxis(out, -1, 0)
    if rescaled:
        out = (out.astype(np.float64) * (1 / 255)).astype(np.float32)
    return out


def center_crop(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """The central (height, width) window; zero padding (centred) where the image is smaller."""
    orig_h, orig_w = array.shape[-2:]
    top, left = (orig_h - height) // 2, (orig_w - width) // 2
    if top >= 0 and left >= 0 and top + height <= orig_h and left + width <= orig_w:
        return array[..., top:top + height, left:left + width]
    new_h, new_w = max(height, orig_h), max(width, orig_w)
    padded = np.zeros(array.shape[:-2] + (new_h, new_w), array.dtype)
    top_pad, left_pad = math.ceil((new_h - orig_h) / 2), math.ceil((new_w - orig_w) / 2)
    padded[..., top_pad:top_pad + orig_h, left_pad:left_pad + orig_w] = array
    top, left = top + top_pad, left + left_pad
    return padded[..., max(0, top):min(new_h, top + height), max(0, left):min(new_w, left + width)]


def normalize(array: np.ndarray, mean, std) -> np.ndarray:
    """(x - mean) / std per channel, in the image's float dtype (float32 for integer images)."""
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    channels = array.shape[0]
    mean = list(mean) if isinstance(mean, (list, tuple)) else [mean] * channels
    std = list(std) if isinstance(std, (list, tuple)) else [std] * channels
    if len(mean) != channels or len(std) != channels:
        raise ImageProcessorError(f"image_mean / image_std have {len(mean)} / {len(std)} entries for an image with "
                                  f"{channels} channels")
    mean_a = np.array(mean, dtype=array.dtype)[:, None, None]
    std_a = np.array(std, dtype=array.dtype)[:, None, None]
    return (array - mean_a) / std_a
