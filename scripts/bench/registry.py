"""The case registry. A suite is a function `ctx -> list[Case]`, registered with `@suite`.

A suite whose models or entry points do not exist yet raises `NotAvailable(reason)`; the
harness reports "not available yet: <reason>" for it instead of inventing numbers. Suites build
their models when called (not at import), so registering them costs nothing.

A `Case` is either timed — its `variants` are run alternately, one sample each per round, and
each variant is compared with the `baseline` variant pair by pair — or measured: `measure()`
returns a dict of metrics (e.g. peak-RSS ratios). A case can also be `unavailable` with a
reason (e.g. one configuration of a suite that core cannot build yet).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional


class NotAvailable(Exception):
    """Raised by a suite (or set on a case) whose subject does not exist yet; the message says why."""


@dataclasses.dataclass
class Variant:
    name: str                                   # e.g. "rosetta", "transformers", "scan"
    run: Callable[[], Any]                      # one timed call; must block until its result is ready
    framework: str = "jax"                      # "jax" or "torch": which matmul peak applies
    role: str = "rosetta"                       # "rosetta" or "reference"
    prepare: Optional[Callable[[], None]] = None  # untimed, before every sample (e.g. clear caches)


@dataclasses.dataclass
class Case:
    name: str
    description: str
    variants: list[Variant] = dataclasses.field(default_factory=list)
    baseline: Optional[str] = None              # ratios are baseline time ÷ variant time (>1: faster)
    work: dict = dataclasses.field(default_factory=dict)   # per call: flops, items (+ item_unit), bytes
    measure: Optional[Callable[[], dict]] = None
    unavailable: Optional[str] = None
    info: dict = dataclasses.field(default_factory=dict)   # config, shapes, checks, notes
    warmup: Optional[int] = None                # overrides the run's warm-up rounds
    repeats: Optional[int] = None               # overrides the run's repeats
    check: Optional[Callable[[], dict]] = None  # untimed, after the timed rounds: e.g. max |Rosetta - reference|


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    description: str
    build: Callable[[Any], list[Case]]


SUITES: dict[str, Suite] = {}


def suite(name: str, description: str):
    """Register `fn(ctx) -> list[Case]` as the suite `name`."""
    def register(fn):
        if name in SUITES:
            raise ValueError(f"suite {name!r} registered twice")
        SUITES[name] = Suite(name, description, fn)
        return fn
    return register


def load_suites() -> dict[str, Suite]:
    """Import every suite module (each registers itself) and return the registry."""
    from scripts.bench import suites  # noqa: F401  (registration side effects)

    return SUITES


@dataclasses.dataclass
class Context:
    """What a suite gets: the run's settings and shared resources."""
    quick: bool
    preset: dict                     # models.PRESETS["quick" or "full"]
    threads: int
    work_dir: Any                    # pathlib.Path: shared folders (temp, or --cache-dir)
    spawner: Any = None              # spawner.Spawner for peak-RSS children
    log: Callable[[str], None] = print
    _folders: dict = dataclasses.field(default_factory=dict)

    def bert_folder(self, config_kwargs: dict):
        """The shared `transformers`-written BERT folder for this config (built once per run)."""
        return self.folder("bert", config_kwargs)

    def folder(self, kind: str, config_kwargs: dict):
        """The shared `transformers`-written folder of `kind` ("bert", "gpt2", "t5") for this
        config (built once per run)."""
        from scripts.bench import models

        key = (kind, repr(sorted(config_kwargs.items())))
        if key not in self._folders:
            self._folders[key] = models.build_folder(self.work_dir, kind, config_kwargs, self.log)
        return self._folders[key]
