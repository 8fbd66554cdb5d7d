"""`core.processing.image` against transformers' ViT / DeiT image processors (Pillow backend),
from their own saved preprocessor_config.json, on generated PIL and numpy images."""
import json

import numpy as np
import PIL.Image
import pytest
import transformers

from core.processing import AutoImageProcessor, ImageProcessor
from core.processing.image import ImageProcessorError

RNG = np.random.default_rng(0)


def images():
    """A mixed bag: RGB PIL images of several sizes, a grayscale one, uint8 HWC and CHW
    arrays, a float HWC array in [0, 1]."""
    rgb = [PIL.Image.fromarray(RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)) for h, w in ((37, 51), (64, 40))]
    return {
        "pil": rgb,
        "pil-gray": [PIL.Image.fromarray(RNG.integers(0, 256, size=(30, 45), dtype=np.uint8))],
        "np-hwc-uint8": [RNG.integers(0, 256, size=(33, 29, 3), dtype=np.uint8),
                         RNG.integers(0, 256, size=(20, 70, 3), dtype=np.uint8)],
        "np-chw-uint8": [RNG.integers(0, 256, size=(3, 41, 26), dtype=np.uint8)],
        "np-hwc-float": [RNG.random((28, 36, 3)).astype(np.float32)],
    }


PROCESSORS = [
    ("vit", transformers.ViTImageProcessorPil, {}),
    ("vit-small", transformers.ViTImageProcessorPil, {"size": {"height": 16, "width": 24}, "resample": 3,
                                                       "image_mean": [0.1, 0.4, 0.7], "image_std": [0.2, 0.3, 0.9]}),
    ("deit", transformers.DeiTImageProcessorPil, {"size": {"height": 40, "width": 36},
                                                  "crop_size": {"height": 32, "width": 30}}),
    ("deit-pad", transformers.DeiTImageProcessorPil, {"size": {"height": 20, "width": 20},
                                                      "crop_size": {"height": 24, "width": 22}}),   # crop > image
    ("shortest-edge", transformers.DeiTImageProcessorPil, {"size": {"shortest_edge": 24}, "resample": 2,
                                                           "crop_size": {"height": 20, "width": 20}}),
    ("no-resize", transformers.ViTImageProcessorPil, {"do_resize": False, "do_normalize": False}),
]


@pytest.mark.parametrize("name,cls,kwargs", PROCESSORS, ids=[p[0] for p in PROCESSORS])
def test_matches_transformers(name, cls, kwargs, tmp_path, record_property):
    reference = cls(**kwargs)
    reference.save_pretrained(tmp_path)
    ours = AutoImageProcessor.from_pretrained(tmp_path)
    worst = 0.0
    for kind, batch in images().items():
        if kind == "pil-gray":
            if name == "vit-small":
                continue                     # 3-entry mean on a 1-channel image: an error in both
            ours_gray = ImageProcessor.from_dict({**ours.to_dict(), "image_mean": 0.5, "image_std": 0.5})
            ref_gray = cls(**{**kwargs, "image_mean": 0.5, "image_std": 0.5})
            pairs = [(ours_gray, ref_gray)]
        else:
            pairs = [(ours, reference)]
        for mine, theirs in pairs:
            resized = kwargs.get("do_resize", True)
            groups = ([batch[0]], batch) if resized else [[b] for b in batch]   # unresized sizes differ
            for group in groups:
                got = mine(group)["pixel_values"]
                want = theirs(group, return_tensors="np")["pixel_values"]
                assert got.dtype == np.float32 and got.shape == want.shape, (kind, got.shape, want.shape)
                diff = float(np.max(np.abs(got.astype(np.float64) - want))) if got.size else 0.0
                assert diff <= 1e-5, (kind, diff)
                worst = max(worst, diff)
    record_property("parity:image processor vs transformers", worst)


def test_batches_and_single_images(tmp_path):
    transformers.ViTImageProcessorPil(size={"height": 8, "width": 8}).save_pretrained(tmp_path)
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    batch = images()["pil"]
    stacked = processor(batch)["pixel_values"]
    assert stacked.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(processor(batch[1])["pixel_values"][0], stacked[1])
    as_array = np.stack([np.array(im.resize((10, 12))) for im in batch])          # (2, 12, 10, 3)
    assert processor(as_array)["pixel_values"].shape == (2, 3, 8, 8)


def test_config_round_trip_and_errors(tmp_path):
    transformers.DeiTImageProcessorPil().save_pretrained(tmp_path)
    data = json.loads((tmp_path / "preprocessor_config.json").read_text())
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    assert processor.do_center_crop and processor.crop_size == {"height": 224, "width": 224} and processor.resample == 3
    assert {k: v for k, v in processor.to_dict().items() if k in data} == data
    with pytest.raises(ImageProcessorError, match="not supported"):
        ImageProcessor.from_dict({"image_processor_type": "SiglipImageProcessor"})
    with pytest.raises(ImageProcessorError, match="size"):
        ImageProcessor.from_dict({"image_processor_type": "ViTImageProcessor", "size": {"height": 3}})
    with pytest.raises(ImageProcessorError, match="preprocessor_config.json"):
        AutoImageProcessor.from_pretrained(tmp_path / "missing")
    with pytest.raises(ImageProcessorError, match="channel"):
        processor(np.zeros((5, 6, 7), np.uint8))
