"""Audio feature extractors: `preprocessor_config.json` → `input_values` (batch, samples).

`transformers`' Wav2Vec2FeatureExtractor step for step (numpy only): truncate to `max_length`
(with truncation=True), pad with `padding_value` (True / "longest": to the longest example;
"max_length": to `max_length`; `pad_to_multiple_of` rounds up; `padding_side` left or right),
the attention mask over samples (1 = real) when `return_attention_mask` (the file's default
unless given), then with `do_normalize` zero mean / unit variance per example (variance + 1e-7)
in float32: over the real samples when padded with a mask (the padding then reset to
`padding_value`), else over the whole (possibly padded) array, as `transformers` does.

    extractor = AutoFeatureExtractor.from_pretrained("path/to/folder")
    batch = extractor(waves, sampling_rate=16000, padding=True)   # {"input_values", "attention_mask"}
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Optional

import numpy as np


class FeatureExtractorError(ValueError):
    """A feature-extractor config or an input the extractor cannot handle."""


@dataclasses.dataclass
class Wav2Vec2FeatureExtractor:
    feature_extractor_type: str = "Wav2Vec2FeatureExtractor"
    feature_size: int = 1
    sampling_rate: int = 16000
    padding_value: float = 0.0
    return_attention_mask: bool = False
    do_normalize: bool = True
    padding_side: str = "right"
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.feature_size != 1:
            raise FeatureExtractorError(f"feature_size={self.feature_size}: Wav2Vec2FeatureExtractor takes mono raw "
                                        "audio (feature_size 1)")
        if self.padding_side not in ("left", "right"):
            raise FeatureExtractorError(f"padding_side={self.padding_side!r}: expected 'left' or 'right'")

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict) -> "Wav2Vec2FeatureExtractor":
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        kind = known.get("feature_extractor_type", "Wav2Vec2FeatureExtractor")
        if kind != "Wav2Vec2FeatureExtractor":
            raise FeatureExtractorError(f"feature_extractor_type {kind!r} is not supported; supported: "
                                        "Wav2Vec2FeatureExtractor")
        return cls(**known, extra=extra)

    @classmethod
    def from_pretrained(cls, folder) -> "Wav2Vec2FeatureExtractor":
        path = pathlib.Path(folder) / "preprocessor_config.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FeatureExtractorError(f"{path}: no such file; a speech model folder needs a "
                                        "preprocessor_config.json") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out

    def save_pretrained(self, folder) -> pathlib.Path:
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "preprocessor_config.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    # -- calling ----------------------------------------------------------------------------------
    def __call__(self, raw_speech, padding=False, max_length: Optional[int] = None, truncation: bool = False,
                 pad_to_multiple_of: Optional[int] = None, return_attention_mask: Optional[bool] = None,
                 sampling_rate: Optional[int] = None) -> dict[str, Any]:
        """One wave (1-D) or a batch (2-D array / list of 1-D) → {"input_values"[, "attention_mask"]}:
        float32 arrays (batch, samples) when padded to one length, else lists of 1-D arrays."""
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise FeatureExtractorError(
                f"sampling_rate={sampling_rate}: this feature extractor expects audio sampled at "
                f"{self.sampling_rate} Hz; resample the audio to {self.sampling_rate} Hz first")
        batched = (isinstance(raw_speech, np.ndarray) and raw_speech.ndim > 1) or (
            isinstance(raw_speech, (list, tuple)) and len(raw_speech) > 0
            and isinstance(raw_speech[0], (np.ndarray, list, tuple)))
        if isinstance(raw_speech, np.ndarray) and raw_speech.ndim > 2:
            raise FeatureExtractorError(f"input of shape {raw_speech.shape}: only mono audio (samples,) or a batch "
                                        "(batch, samples) is supported")
        waves = list(raw_speech) if batched else [raw_speech]
        waves = [np.asarray(w) for w in waves]
        for w in waves:
            if w.ndim != 1:
                raise FeatureExtractorError(f"a wave of shape {w.shape}: expected 1-D mono samples")
        waves = [w.astype(np.float32) if w.dtype == np.float64 else w for w in waves]
        strategy = self._strategy(padding, max_length)
        mask_wanted = self.return_attention_mask if return_attention_mask is None else return_attention_mask
        if truncation:
            if max_length is None:
                raise FeatureExtractorError("truncation=True needs max_length")
            limit = _round_up(max_length, pad_to_multiple_of)
            waves = [w[:limit] for w in waves]
        target = None
        if strategy == "longest":
            target = max(len(w) for w in waves)
        elif strategy == "max_length":
            target = max_length
        if target is not None:
            target = _round_up(target, pad_to_multiple_of)
        values, masks = [], []
        for w in waves:
            mask = np.ones(len(w), np.int32)
            if target is not None and len(w) < target:
                diff = target - len(w)
                pads = (0, diff) if self.padding_side == "right" else (diff, 0)
                w = np.pad(w, pads, "constant", constant_values=self.padding_value)
                mask = np.pad(mask, pads)
            values.append(w.astype(np.float32) if w.dtype == np.float64 else w)
            masks.append(mask)
        values = [np.asarray(v, np.float32) for v in values]
        if self.do_normalize:
            use_mask = mask_wanted and strategy != "do_not_pad"
            normed = []
            for v, m in zip(values, masks):
                if use_mask:
                    length = int(m.sum())
                    real = v[:length]
                    out = (v - real.mean()) / np.sqrt(real.var() + 1e-7)
                    if length < out.shape[0]:
                        out[length:] = self.padding_value
                else:
                    out = (v - v.mean()) / np.sqrt(v.var() + 1e-7)
                normed.append(out)
            values = normed
        same = len({len(v) for v in values}) == 1
        result: dict[str, Any] = {"input_values": np.stack(values).astype(np.float32) if same else values}
        if mask_wanted:
            result["attention_mask"] = np.stack(masks) if same else masks
        return result

    def _strategy(self, padding, max_length) -> str:
        if padding is False or padding is None or padding == "do_not_pad":
            return "do_not_pad"
        if padding is True or padding == "longest":
            return "longest"
        if padding == "max_length":
            if max_length is None:
                raise FeatureExtractorError("padding='max_length' needs max_length")
            return "max_length"
        raise FeatureExtractorError(f"padding={padding!r}: expected True/'longest', 'max_length' or False")


def _round_up(length: int, multiple: Optional[int]) -> int:
    if multiple is not None and length % multiple:
        return (length // multiple + 1) * multiple
    return length


FEATURE_EXTRACTORS = {"Wav2Vec2FeatureExtractor": Wav2Vec2FeatureExtractor}


class AutoFeatureExtractor:
    """Reads `preprocessor_config.json` and builds the extractor it names."""

    @staticmethod
    def from_pretrained(folder):
        path = pathlib.Path(folder) / "preprocessor_config.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FeatureExtractorError(f"{path}: no such file; a speech model folder needs a "
                                        "preprocessor_config.json") from None
        kind = data.get("feature_extractor_type", "Wav2Vec2FeatureExtractor")
        if kind not in FEATURE_EXTRACTORS:
            raise FeatureExtractorError(f"feature_extractor_type {kind!r} is not supported; supported: "
                                        f"{', '.join(FEATURE_EXTRACTORS)}")
        return FEATURE_EXTRACTORS[kind].from_dict(data)
