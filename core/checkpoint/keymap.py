"""Hugging Face tensor names ⇄ Flax param tree, by an explicit table of rules per family.

A rule pairs a Hugging Face name pattern with a Flax path pattern and a transform:

    Rule("encoder.layer.{layer}.attention.self.{proj}.weight",
         "encoder/layer/block/attention/self/{proj}/kernel", TRANSPOSE)

`{name}` matches one name segment and carries over; `{layer}` is the index of a scanned layer:
it vanishes from the Flax path, where the tensor becomes row `layer` of a stacked leaf. Rules
are bidirectional, so the same table loads and saves.

Loading is checked before any tensor is read: every checkpoint key is mapped and its shape
(after the transform) compared with the abstract param tree from `jax.eval_shape`; one
`KeyMapError` lists every missing, unexpected and mis-shaped key. Only then are tensors
streamed, one at a time.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np


class KeyMapError(ValueError):
    """Checkpoint and model disagree; the message lists every problem at once."""


@dataclasses.dataclass(frozen=True)
class Transform:
    """How a tensor changes between layouts. `shape_to_flax` lets shapes be checked unread."""
    name: str
    to_flax: Callable[[np.ndarray], np.ndarray]
    to_hf: Callable[[np.ndarray], np.ndarray]
    shape_to_flax: Callable[[tuple], tuple]


IDENTITY = Transform("identity", lambda a: a, lambda a: a, lambda s: tuple(s))
# torch Linear stores (out, in); Flax Dense stores (in, out). Views: the loader copies them once,
# straight into the destination buffer.
TRANSPOSE = Transform("transpose", lambda a: a.T, lambda a: a.T, lambda s: tuple(reversed(s)))


_FIELD = re.compile(r"\{(\w+)\}")


def _compile(pattern: str, sep: str) -> re.Pattern:
    parts, last = [], 0
    for m in _FIELD.finditer(pattern):
        parts.append(re.escape(pattern[last:m.start()]))
        name = m.group(1)
        parts.append(rf"(?P<{name}>\d+)" if name == "layer" else rf"(?P<{name}>[^{re.escape(sep)}]+)")
        last = m.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts) + r"\Z")


@dataclasses.dataclass(frozen=True)
class Rule:
    hf: str
    flax: str
    transform: Transform = IDENTITY

    def __post_init__(self):
        hf_fields = set(_FIELD.findall(self.hf))
        flax_fields = set(_FIELD.findall(self.flax))
        if flax_fields - hf_fields or (hf_fields - flax_fields) - {"layer"}:
            raise ValueError(f"rule {self.hf!r} ⇄ {self.flax!r}: both sides must name the same fields "
                             "({layer} may appear on the Hugging Face side only)")
        object.__setattr__(self, "_hf_re", _compile(self.hf, "."))
        object.__setattr__(self, "_flax_re", _compile(self.flax, "/"))

    @property
    def stacked(self) -> bool:
        return "{layer}" in self.hf

    def match_hf(self, key: str) -> Optional[tuple[str, Optional[int]]]:
        m = self._hf_re.match(key)
        if not m:
            return None
        fields = m.groupdict()
        layer = fields.pop("layer", None)
        return self.flax.format(**fields), (None if layer is None else int(layer))

    def match_flax(self, path: str) -> Optional[dict]:
        m = self._flax_re.match(path)
        return None if m is None else m.groupdict()


def dense(hf: str, flax: str, bias: bool = True) -> list[Rule]:
    """A torch Linear `hf` ⇄ a `P.Dense` at `flax`."""
    rules = [Rule(f"{hf}.weight", f"{flax}/kernel", TRANSPOSE)]
    if bias:
        rules.append(Rule(f"{hf}.bias", f"{flax}/bias"))
    return rules


def _conv_to_flax_axes(ndim: int) -> tuple:
    return tuple(range(2, ndim)) + (1, 0)                 # (out, in, *k) → (*k, in, out)


def _conv_to_hf_axes(ndim: int) -> tuple:
    return (ndim - 1, ndim - 2) + tuple(range(ndim - 2))  # (*k, in, out) → (out, in, *k)


# torch ConvNd stores (out, in // groups, *kernel_size); a Flax / `P.Conv` kernel is
# (*kernel_size, in // groups, out). Any number of spatial dims.
CONV_KERNEL = Transform("conv kernel",
                        lambda a: np.transpose(a, _conv_to_flax_axes(a.ndim)),
                        lambda a: np.transpose(a, _conv_to_hf_axes(a.ndim)),
                        lambda s: tuple(s[i] for i in _conv_to_flax_axes(len(s))))


def conv(hf: str, flax: str, bias: bool = True) -> list[Rule]:
    """A torch Conv1d/Conv2d/Conv3d `hf` ⇄ a `P.Conv` at `flax` (kernel axes permuted)."""
    rules = [Rule(f"{hf}.weight", f"{flax}/kernel", CONV_KERNEL)]
    if bias:
        rules.append(Rule(f"{hf}.bias", f"{flax}/bias"))
    return rules


def batch_norm(hf: str, flax: str, affine: bool = True) -> list[Rule]:
    """A torch BatchNorm `hf` ⇄ a `P.BatchNorm` at `flax` (running statistics are its `mean` /
    `var` leaves). `num_batches_tracked` has no Flax leaf: the family's KeyMap must ignore it."""
    rules = [Rule(f"{hf}.running_mean", f"{flax}/mean"), Rule(f"{hf}.running_var", f"{flax}/var")]
    if affine:
        rules += [Rule(f"{hf}.weight", f"{flax}/scale"), Rule(f"{hf}.bias", f"{flax}/bias")]
    return rules


def layer_norm(hf: str, flax: str, bias: bool = True) -> list[Rule]:
    rules = [Rule(f"{hf}.weight", f"{flax}/scale")]
    if bias:
        rules.append(Rule(f"{hf}.bias", f"{flax}/bias"))
    return rules


def conv1d(hf: str, flax: str) -> list[Rule]:
    """A `transformers` Conv1D `hf` (GPT-2 style; weight stored (in, out), already a Flax kernel)
    ⇄ a `P.Dense` at `flax`: no transpose."""
    return [Rule(f"{hf}.weight", f"{flax}/kernel", IDENTITY), Rule(f"{hf}.bias", f"{flax}/bias")]


def embedding(hf: str, flax: str) -> list[Rule]:
    return [Rule(f"{hf}.weight", f"{flax}/embedding")]


def prefixed(prefix_hf: str, prefix_flax: str, rules: Iterable[Rule]) -> list[Rule]:
    """The same rules under a parent module (e.g. a backbone inside a task head)."""
    hf = f"{prefix_hf}." if prefix_hf else ""
    fl = f"{prefix_flax}/" if prefix_flax else ""
    return [Rule(hf + r.hf, fl + r.flax, r.transform) for r in rules]


@dataclasses.dataclass(frozen=True)
class KeyMap:
    """The rules of one model (family × head × config), plus names the checkpoint may carry
    that the model does not use (`ignore`: regexes, e.g. non-persistent buffers or tied copies)."""
    rules: Sequence[Rule]
    ignore: Sequence[str] = ()

    def __post_init__(self):
        object.__setattr__(self, "_ignore_re", [re.compile(p + r"\Z") for p in self.ignore])

    def ignored(self, key: str) -> bool:
        return any(r.match(key) for r in self._ignore_re)

    def to_flax(self, key: str):
        """(flax_path, layer index or None, rule) for a checkpoint key, or None if unmapped."""
        for rule in self.rules:
            hit = rule.match_hf(key)
            if hit is not None:
                return hit[0], hit[1], rule
        return None


# -- flat views of nested param trees -------------------------------------------------------------

def flatten(tree: Mapping, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, path + "/"))
        else:
            flat[path] = value
    return flat


def unflatten(flat: Mapping[str, object]) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


# -- planning and loading -------------------------------------------------------------------------

@dataclasses.dataclass
class LoadPlan:
    """Where every checkpoint tensor goes; built from names and shapes only (no data read)."""
    assignments: dict[str, tuple[str, Optional[int], Rule]]   # hf key → (flax path, layer, rule)
    ignored: list[str]


def plan_load(keymap: KeyMap, source_shapes: Mapping[str, tuple], abstract: Mapping[str, object],
              source_name: str, optional_missing: Callable[[str], bool] = lambda path: False) -> LoadPlan:
    """Map and shape-check every key; raise one `KeyMapError` listing all problems.

    `abstract`: flat {flax path: object with .shape} (from `jax.eval_shape` of init).
    `optional_missing(path)`: paths allowed to be absent (they are initialised fresh).
    """
    unexpected, misshaped, assignments, ignored = [], [], {}, []
    filled: dict[str, set] = {}
    for key, shape in source_shapes.items():
        hit = keymap.to_flax(key)
        if hit is None:
            (ignored if keymap.ignored(key) else unexpected).append(key)
            continue
        path, layer, rule = hit
        if path not in abstract:
            (ignored if keymap.ignored(key) else unexpected).append(key)
            continue
        want = tuple(abstract[path].shape)
        got = rule.transform.shape_to_flax(tuple(shape))
        if layer is not None:
            if layer >= want[0]:
                unexpected.append(f"{key} (layer {layer}, but the model has {want[0]} layers)")
                continue
            want = want[1:]
        if got != want:
            misshaped.append(f"{key}: checkpoint {tuple(shape)} → {got} after {rule.transform.name}, "
                             f"model expects {want} at {path}")
            continue
        slots = filled.setdefault(path, set())
        if layer in slots:
            unexpected.append(f"{key} (duplicate of an earlier key for {path})")
            continue
        slots.add(layer)
        assignments[key] = (path, layer, rule)
    missing = []
    for path, leaf in abstract.items():
        slots = filled.get(path, set())
        stacked = any(r.stacked and r.match_flax(path) is not None for r in keymap.rules)
        if stacked:
            absent = sorted(set(range(leaf.shape[0])) - slots)
            if absent and not optional_missing(path):
                missing.append(f"{path} (layers {absent})")
        elif not slots and not optional_missing(path):
            missing.append(path)
    if unexpected or misshaped or missing:
        lines = [f"{source_name}: checkpoint and model do not match; nothing was loaded."]
        for title, items in (("missing (the model needs these; the checkpoint lacks them)", missing),
                             ("unexpected (in the checkpoint; the model has no place for them)", unexpected),
                             ("mis-shaped", misshaped)):
            if items:
                lines.append(f"  {title}: {len(items)}")
                lines.extend(f"    {item}" for item in items)
        raise KeyMapError("\n".join(lines))
    return LoadPlan(assignments, ignored)


def aligned_empty(shape: tuple, dtype, alignment: int = 64) -> np.ndarray:
    """An uninitialised array whose data starts on an `alignment`-byte boundary: XLA's CPU
    client can then adopt it without a copy (`jax.device_put(..., may_alias=True)`)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + alignment, np.uint8)
    offset = (-raw.ctypes.data) % alignment
    return raw[offset:offset + nbytes].view(dtype).reshape(shape)


def load_tensors(plan: LoadPlan, get: Callable[[str], np.ndarray], abstract: Mapping[str, object],
                 put: Callable[[np.ndarray], object], allocate=aligned_empty) -> dict[str, object]:
    """Stream tensors into a flat {flax path: array}. Each leaf gets one host buffer from
    `allocate`; tensors are transformed straight into it (a stacked leaf row by row) and `put`
    hands the finished buffer on (to the device, zero-copy where the backend allows). At any
    time at most one checkpoint tensor is held beside the loaded params."""
    by_path: dict[str, list] = {}
    for key, (path, layer, rule) in plan.assignments.items():
        by_path.setdefault(path, []).append((key, layer, rule))
    flat = {}
    for path, entries in by_path.items():
        leaf = abstract[path]
        buffer = allocate(tuple(leaf.shape), leaf.dtype)
        for key, layer, rule in entries:
            target = buffer if layer is None else buffer[layer]
            target[...] = rule.transform.to_flax(get(key))
        flat[path] = put(buffer)
        del buffer
    return flat


def export_tensors(keymap: KeyMap, flat_params: Mapping[str, np.ndarray],
                   skip: Callable[[str], bool] = lambda path: False) -> Iterator[tuple[str, np.ndarray]]:
    """The inverse: yield (hf key, tensor) for every Flax leaf; stacked leaves are split by layer.
    Raises `KeyMapError` listing every leaf no rule covers."""
    unmapped = []
    out = []
    for path, value in flat_params.items():
        if skip(path):
            continue
        for rule in keymap.rules:
            fields = rule.match_flax(path)
            if fields is None:
                continue
            if rule.stacked:
                for layer in range(value.shape[0]):
                    out.append((rule.hf.format(layer=layer, **fields), rule, value, layer))
            else:
                out.append((rule.hf.format(**fields), rule, value, None))
            break
        else:
            unmapped.append(path)
    if unmapped:
        raise KeyMapError("no rule maps these Flax params to Hugging Face names: " + ", ".join(unmapped))
    for key, rule, value, layer in out:
        array = np.asarray(value if layer is None else value[layer])
        exported = rule.transform.to_hf(array)
        # ascontiguousarray turns a 0-d array (CLIP's logit_scale) into shape (1,): keep the shape.
        yield key, np.ascontiguousarray(exported).reshape(np.shape(exported))
