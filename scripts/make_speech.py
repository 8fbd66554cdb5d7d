"""Regenerate the synthetic speech clips of `tests/data/speech/` (used by tests/test_whisper_real.py).

    python -m scripts.make_speech               # writes tests/data/speech/*.wav and sentences.json
    python -m scripts.make_speech --out=DIR

Each sentence of `SENTENCES` is spoken by espeak-ng (`espeak-ng -v en-us -s 150 -w tmp.wav TEXT`;
made with eSpeak NG 1.51, voice `en-us`, 150 words per minute, default pitch/amplitude), which
writes 22050 Hz mono 16-bit PCM; it is resampled to 16 kHz with
`scipy.signal.resample_poly(x, 320, 441)` (16000/22050 = 320/441), peak-normalised to -1 dBFS
and written as mono 16-bit PCM wav. `sentences.json` maps each file name to its text.

The clips are committed: CI machines have no espeak-ng, so the tests only read them. Re-running
on another espeak-ng version changes the audio slightly (the WER bound of the test has margin).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from scipy import signal
from scipy.io import wavfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "speech"
VOICE = "en-us"
RATE_WPM = 150
SAMPLING_RATE = 16000

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get home.",
    "The weather is warm and sunny today.",
    "I would like a cup of coffee with milk.",
    "Open the window and let the fresh air in.",
    "We are going to the park tomorrow morning.",
]


def synthesize(text: str, espeak: str) -> np.ndarray:
    """`text` spoken by espeak-ng, as int16 samples at 16 kHz."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = pathlib.Path(tmp) / "raw.wav"
        subprocess.run([espeak, "-v", VOICE, "-s", str(RATE_WPM), "-w", str(raw), text], check=True)
        rate, samples = wavfile.read(raw)
    if samples.ndim != 1:
        samples = samples.mean(axis=1)
    x = np.asarray(samples, np.float64) / 32768.0
    if rate != SAMPLING_RATE:
        g = np.gcd(SAMPLING_RATE, rate)
        x = signal.resample_poly(x, SAMPLING_RATE // g, rate // g)
    x = x / max(np.abs(x).max(), 1e-9) * 10 ** (-1 / 20)        # peak at -1 dBFS
    return np.asarray(np.round(x * 32767), np.int16)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT), help="output folder (default tests/data/speech)")
    args = parser.parse_args(argv)
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        print("espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = {}
    for i, text in enumerate(SENTENCES):
        name = f"sentence_{i:02d}.wav"
        audio = synthesize(text, espeak)
        wavfile.write(out / name, SAMPLING_RATE, audio)
        table[name] = text
        print(f"{name}: {len(audio) / SAMPLING_RATE:.2f} s  {text}")
    (out / "sentences.json").write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
