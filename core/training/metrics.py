"""Where training metrics go: a JSONL file in the workdir (always), TensorBoard event files
(optional; TensorFlow is imported only then), and a tqdm progress line with loss, tokens/s and ETA."""
from __future__ import annotations

import json
import math
import pathlib
from typing import Mapping, Optional

from absl import logging

METRICS_FILE = "metrics.jsonl"


def _clean(value):
    value = float(value)
    return value if math.isfinite(value) else str(value)     # JSON has no NaN/inf


class MetricWriter:
    """`write(step, split, {...})` appends `{"step", "split", ...}` to `metrics.jsonl`, and
    scalars `split/name` to TensorBoard under `tb/` when enabled. Only process 0 writes."""

    def __init__(self, workdir, tensorboard: bool = False, enabled: bool = True):
        self.path = pathlib.Path(workdir) / METRICS_FILE
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard:
            self._tb = _TensorBoard(pathlib.Path(workdir) / "tb")

    def truncate_after(self, step: int) -> None:
        """On resume: drop lines of steps after the restored checkpoint (they are redone)."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, step: int, split: str, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "split": split, **{k: _clean(v) for k, v in values.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            self._tb.write(step, {f"{split}/{k}": float(v) for k, v in values.items()})

    def write_text(self, step: int, split: str, texts: list[str]) -> None:
        """Text records (e.g. generated samples): `{"step", "split", "text": [...]}` in the JSONL
        file and a text summary in TensorBoard."""
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": int(step), "split": split, "text": list(texts)}) + "\n")
        if self._tb is not None:
            self._tb.write_text(step, split, texts)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


class _TensorBoard:
    """Scalar summaries through `tf.summary.write` with the scalars-plugin metadata, which needs
    only TensorFlow (not the `tensorboard` package) to write files TensorBoard reads."""

    def __init__(self, logdir: pathlib.Path):
        import tensorflow as tf                      # lazy: only when TensorBoard output is on
        from tensorflow.core.framework import summary_pb2

        tf.config.set_visible_devices([], "GPU")     # TF must not take accelerator memory from JAX
        self.tf = tf
        self.metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
        self.writer = tf.summary.create_file_writer(str(logdir))

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        with self.writer.as_default():
            for tag, value in scalars.items():
                self.tf.summary.write(tag, self.tf.constant(value, self.tf.float32), step=int(step),
                                      metadata=self.metadata)
        self.writer.flush()

    def write_text(self, step: int, tag: str, texts: list[str]) -> None:
        metadata = type(self.metadata)(plugin_data=type(self.metadata.plugin_data)(plugin_name="text"))
        with self.writer.as_default():
            self.tf.summary.write(tag, self.tf.constant(list(texts)), step=int(step), metadata=metadata)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Progress:
    """A tqdm bar over steps with loss, tokens/s and tqdm's ETA; plain log lines when disabled."""

    def __init__(self, total: int, initial: int, enabled: bool = True, description: str = "train"):
        self.bar: Optional[object] = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:        # tqdm is optional: fall back to log lines
                tqdm = None
                logging.warning("tqdm is not installed: progress goes to the log instead")
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=initial, desc=description, unit="step", dynamic_ncols=True,
                                smoothing=0.1)
        self.total = total

    def update(self, step: int, n: int, loss: float, tokens_per_sec: float, **extra: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_sec:,.0f}",
                                 **{k: f"{v:.3g}" for k, v in extra.items()}, refresh=False)
            self.bar.update(n)
        else:
            logging.info("step %d/%d: loss %.4f, %.0f tokens/s", step, self.total, loss, tokens_per_sec)

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message)
        else:
            logging.info("%s", message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _LibraryInfoFilter:
    """Drops INFO/DEBUG records logged from inside noisy libraries (orbax logs every save step)."""

    def __init__(self, fragments: tuple[str, ...]):
        self.fragments = fragments

    def filter(self, record) -> bool:
        import logging as std_logging
        if record.levelno >= std_logging.WARNING:
            return True
        return not any(f in record.pathname for f in self.fragments)


def quiet_library_logs(fragments: tuple[str, ...] = ("/orbax/", "/jax/_src/xla_bridge")) -> None:
    """Keep absl INFO output to Rosetta's own lines (warnings and errors still pass)."""
    import logging as std_logging
    handler = logging.get_absl_handler()
    if not any(isinstance(f, _LibraryInfoFilter) for f in handler.filters):
        handler.addFilter(_LibraryInfoFilter(fragments))
    std_logging.getLogger("absl").addFilter(_LibraryInfoFilter(fragments))
