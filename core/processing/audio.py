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


# -- Whisper: log-mel spectrogram ------------------------------------------------------------------

def hertz_to_mel_slaney(freq):
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), as librosa / transformers."""
    freq = np.asarray(freq, np.float64)
    mels = 3.0 * freq / 200.0
    logstep = 27.0 / np.log(6.4)
    return np.where(freq >= 1000.0, 15.0 + np.log(np.maximum(freq, 1e-12) / 1000.0) * logstep, mels)


def mel_to_hertz_slaney(mels):
    mels = np.asarray(mels, np.float64)
    freq = 200.0 * mels / 3.0
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= 15.0, 1000.0 * np.exp(logstep * (mels - 15.0)), freq)


def mel_filter_bank(num_frequency_bins: int, num_mel_filters: int, min_frequency: float, max_frequency: float,
                    sampling_rate: int) -> np.ndarray:
    """Triangular filters (num_frequency_bins, num_mel_filters), Slaney scale and Slaney (area)
    normalisation, float64: `transformers.audio_utils.mel_filter_bank(..., norm="slaney",
    mel_scale="slaney")`."""
    mel_freqs = np.linspace(hertz_to_mel_slaney(min_frequency), hertz_to_mel_slaney(max_frequency),
                            num_mel_filters + 2)
    filter_freqs = mel_to_hertz_slaney(mel_freqs)
    fft_freqs = np.linspace(0, sampling_rate // 2, num_frequency_bins)
    filter_diff = np.diff(filter_freqs)
    slopes = np.expand_dims(filter_freqs, 0) - np.expand_dims(fft_freqs, 1)
    down_slopes = -slopes[:, :-2] / filter_diff[:-1]
    up_slopes = slopes[:, 2:] / filter_diff[1:]
    filters = np.maximum(np.zeros(1), np.minimum(down_slopes, up_slopes))
    enorm = 2.0 / (filter_freqs[2:num_mel_filters + 2] - filter_freqs[:num_mel_filters])
    return filters * np.expand_dims(enorm, 0)


def hann_window(length: int) -> np.ndarray:
    """The periodic Hann window (torch.hann_window's default)."""
    return np.hanning(length + 1)[:-1]


def log_mel_spectrogram(wave: np.ndarray, mel_filters: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Whisper's log-mel features of one wave: centred STFT (reflect padding, periodic Hann), power
    spectrum, mel projection, the last frame dropped, log10 clamped at 1e-10, floored at the
    maximum − 8, then (x + 4) / 4. Returns float32 (num_mel_filters, len(wave) // hop_length)."""
    wave = np.asarray(wave, np.float64)
    half = n_fft // 2
    padded = np.pad(wave, (half, half), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    power = np.abs(np.fft.rfft(frames * hann_window(n_fft), n=n_fft, axis=-1)) ** 2
    mel = (power @ mel_filters).T[:, :-1]
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


@dataclasses.dataclass
class WhisperFeatureExtractor:
    """`transformers.WhisperFeatureExtractor` in numpy: raw 16 kHz mono audio → log-mel
    `input_features` (batch, feature_size, frames), frames = samples / hop_length (3000 for the
    default 30 s chunk).

        extractor = AutoFeatureExtractor.from_pretrained(folder)        # preprocessor_config.json
        batch = extractor(waves, sampling_rate=16000)    # {"input_features": (batch, 80, 3000) float32}

    Call options as `transformers`: padding ("max_length" (default: to `n_samples` =
    chunk_length × sampling_rate, or `max_length`), "longest"/True, False/"do_not_pad"),
    truncation (default True), max_length, pad_to_multiple_of, return_attention_mask (the mask
    over frames: every hop_length-th sample's mask; see the quirk in `__call__`), do_normalize
    (zero mean / unit variance of the real samples before the spectrogram)."""
    feature_extractor_type: str = "WhisperFeatureExtractor"
    feature_size: int = 80
    sampling_rate: int = 16000
    hop_length: int = 160
    chunk_length: int = 30
    n_fft: int = 400
    padding_value: float = 0.0
    padding_side: str = "right"
    dither: float = 0.0
    return_attention_mask: bool = False
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.padding_side not in ("left", "right"):
            raise FeatureExtractorError(f"padding_side={self.padding_side!r}: expected 'left' or 'right'")
        if self.dither != 0.0:
            raise FeatureExtractorError(f"dither={self.dither}: random dithering is not implemented in Rosetta's "
                                        "WhisperFeatureExtractor (set it to 0.0)")
        for key in ("feature_size", "sampling_rate", "hop_length", "chunk_length", "n_fft"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise FeatureExtractorError(f"{key}={getattr(self, key)!r}: expected a positive int")
        self.mel_filters = mel_filter_bank(1 + self.n_fft // 2, self.feature_size, 0.0, 8000.0, self.sampling_rate)

    @property
    def n_samples(self) -> int:
        return self.chunk_length * self.sampling_rate

    @property
    def nb_max_frames(self) -> int:
        return self.n_samples // self.hop_length

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict) -> "WhisperFeatureExtractor":
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names and k != "mel_filters"}
        kind = known.get("feature_extractor_type", "WhisperFeatureExtractor")
        if kind != "WhisperFeatureExtractor":
            raise FeatureExtractorError(f"feature_extractor_type {kind!r}: expected WhisperFeatureExtractor")
        return cls(**known, extra=extra)

    @classmethod
    def from_pretrained(cls, folder) -> "WhisperFeatureExtractor":
        path = pathlib.Path(folder) / "preprocessor_config.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FeatureExtractorError(f"{path}: no such file; a speech model folder needs a "
                                        "preprocessor_config.json") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out.update({"n_samples": self.n_samples, "nb_max_frames": self.nb_max_frames})
        out.update(self.extra)
        return out

    def save_pretrained(self, folder) -> pathlib.Path:
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "preprocessor_config.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    # -- calling ----------------------------------------------------------------------------------
    def __call__(self, raw_speech, truncation: bool = True, pad_to_multiple_of: Optional[int] = None,
                 return_attention_mask: Optional[bool] = None, padding="max_length", max_length: Optional[int] = None,
                 sampling_rate: Optional[int] = None, do_normalize: Optional[bool] = None) -> dict[str, Any]:
        """One wave (1-D) or a batch (2-D array / list of 1-D) → {"input_features"[, "attention_mask"]}."""
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise FeatureExtractorError(
                f"sampling_rate={sampling_rate}: this feature extractor expects audio sampled at "
                f"{self.sampling_rate} Hz; resample the audio to {self.sampling_rate} Hz first")
        if isinstance(raw_speech, np.ndarray) and raw_speech.ndim > 2:
            raise FeatureExtractorError(f"input of shape {raw_speech.shape}: only mono audio (samples,) or a batch "
                                        "(batch, samples) is supported")
        batched = (isinstance(raw_speech, np.ndarray) and raw_speech.ndim > 1) or (
            isinstance(raw_speech, (list, tuple)) and len(raw_speech) > 0
            and isinstance(raw_speech[0], (np.ndarray, list, tuple)))
        waves = [np.asarray(w, np.float32) for w in (raw_speech if batched else [raw_speech])]
        for w in waves:
            if w.ndim != 1:
                raise FeatureExtractorError(f"a wave of shape {w.shape}: expected 1-D mono samples")
        if padding is True:
            padding = "longest"
        if padding is False or padding is None:
            padding = "do_not_pad"
        if padding not in ("longest", "max_length", "do_not_pad"):
            raise FeatureExtractorError(f"padding={padding!r}: expected 'max_length', 'longest'/True or False")
        limit = max_length if max_length else self.n_samples
        if truncation:
            waves = [w[:_round_up(limit, pad_to_multiple_of)] for w in waves]
        target = None
        if padding == "longest":
            target = max(len(w) for w in waves)
        elif padding == "max_length":
            target = limit
        if target is not None:
            target = _round_up(target, pad_to_multiple_of)
        values, masks = [], []
        for w in waves:
            mask = np.ones(len(w), np.int32)
            if target is not None and len(w) < target:
                pads = (0, target - len(w)) if self.padding_side == "right" else (target - len(w), 0)
                w = np.pad(w, pads, "constant", constant_values=self.padding_value)
                mask = np.pad(mask, pads)
            values.append(w)
            masks.append(mask)
        if do_normalize:
            normed = []
            for v, m in zip(values, masks):
                length = int(m.sum())
                out = (v - v[:length].mean()) / np.sqrt(v[:length].var() + 1e-7)
                if length < out.shape[0]:
                    out[length:] = self.padding_value
                normed.append(out.astype(np.float32))
            values = normed
        feats = [log_mel_spectrogram(v, self.mel_filters, self.n_fft, self.hop_length) for v in values]
        same = len({f.shape for f in feats}) == 1
        result: dict[str, Any] = {"input_features": np.stack(feats) if same else feats}
        # As transformers: a mask comes back when asked for (or by the file's default) or with
        # do_normalize; only an explicit return_attention_mask=True rescales it to frames (else it
        # stays over samples).
        mask_wanted = (self.return_attention_mask if return_attention_mask is None
                       else return_attention_mask) or do_normalize
        if mask_wanted:
            if return_attention_mask:
                masks = [m[::self.hop_length][:len(m) // self.hop_length] if len(m) % self.hop_length
                         else m[::self.hop_length] for m in masks]
            result["attention_mask"] = np.stack(masks) if len({len(m) for m in masks}) == 1 else masks
        return result


FEATURE_EXTRACTORS = {"Wav2Vec2FeatureExtractor": Wav2Vec2FeatureExtractor,
                      "WhisperFeatureExtractor": WhisperFeatureExtractor}


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
