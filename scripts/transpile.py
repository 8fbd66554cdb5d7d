"""Generate the framework ports from the canonical Flax code, and lint that code.

    python -m scripts.transpile                    # regenerate every port file
    python -m scripts.transpile --check            # CI: regenerate in memory, fail on any difference
    python -m scripts.transpile core/models/bert/modeling.py   # regenerate from these sources only
    python -m scripts.transpile --lint [FILE ...]  # only lint (any file; default: every source)

Sources are every canonical file: `core/layers/*.py` except the hand-written primitives, and
`core/models/<family>/modeling.py` for every family folder (new families are picked up by
existing). Each becomes `ports/<target>/layers/<name>.py` or `ports/<target>/models/<family>.py`.

The rewrite is source to source (libcst), so a generated file reads line for line like its
source: `setup()` becomes the constructor (fields become its parameters), `__call__` becomes
`forward`, `jnp.*` / `jax.nn.*` / `jax.lax.*` become `ops.*` (checked against the allow-list
`JAX_NAMES` of the target's `runtime/ops.py`), `P.*` are the runtime's primitive twins, imports
of canonical modules point at the generated ones. A target is an entry of `TARGETS` plus a
runtime package (`ports/<target>/runtime/{ops,prims,chex}.py`).

Before anything is generated, a lint pass checks the portable subset (WORKSPACE.md) and reports
every violation as `path:line: what; how to fix`. Exit status: 0 when everything was generated
(or, with --check, is up to date), 1 on violations or differences. Transpiler errors are never
caught: they end the run with a traceback.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import functools
import hashlib
import pathlib
import re
import sys
from typing import Iterable, Optional, Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINE_LENGTH = 120
COMMAND = "python -m scripts.transpile"


# == targets ======================================================================================

@dataclasses.dataclass(frozen=True)
class Target:
    """Everything framework-specific about a port; the runtime package supplies the rest."""
    name: str
    package: str                  # dotted package of the port ("ports.torch")
    base_class: str               # what `nn.Module` becomes
    call_method: str              # what `__call__` becomes
    framework_imports: dict       # name used in generated code → its import statement
    module_list: Optional[str]    # wraps a list attribute of submodules; "{value}" is the list
    parameter: str                # what `self.param(name, *init_args)` becomes: {args}, {name}
    super_init: str               # first statement of the constructor
    deterministic_default: str    # default of `deterministic` parameters ("True" keeps Flax's)
    deterministic_annotation: str  # its annotation when the default changes
    reserved: frozenset           # attribute names the framework's module class already uses

    @property
    def root(self) -> pathlib.Path:
        return ROOT.joinpath(*self.package.split("."))

    @property
    def runtime(self) -> str:
        return f"{self.package}.runtime"


TORCH_MODULE_API = frozenset({
    # public attributes of torch.nn.Module (tests/test_transpile.py checks the list is complete)
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile",
    "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters",
    "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state",
    "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu",
    "zero_grad",
    # the runtime base class (ports/torch/runtime/module.py)
    "flax_leaves", "flax_shapes", "export_flax", "flax_grads", "load_flax", "head_task", "from_config",
    "from_pretrained", "save_pretrained", "load_report", "generate", "generation_config",
})

DEFAULT_TARGETS = ("torch", "tf")

TF_MODULE_API = frozenset({
    # public attributes of tf.Module (tests/test_transpile.py checks the list is complete)
    "name", "name_scope", "non_trainable_variables", "submodules", "trainable_variables", "variables",
    "with_name_scope",
    # the runtime base class (ports/tf/runtime/module.py)
    "flax_leaves", "flax_shapes", "export_flax", "flax_variables", "flax_grads", "load_flax", "head_task",
    "from_config", "from_pretrained", "save_pretrained", "load_report", "generate", "generation_config",
})

TARGETS = {
    "torch": Target(
        name="torch",
        package="ports.torch",
        base_class="P.Module",
        call_method="forward",
        framework_imports={"nn": "from torch import nn"},
        module_list="nn.ModuleList({value})",
        parameter="nn.Parameter(P.initialize({args}))",
        super_init="super().__init__()",
        # None: follow module.train() / module.eval() (the primitives' twins resolve it).
        deterministic_default="None",
        deterministic_annotation="bool | None",
        reserved=TORCH_MODULE_API,
    ),
    "tf": Target(
        name="tf",
        package="ports.tf",
        base_class="P.Module",
        call_method="__call__",
        framework_imports={"tf": "import tensorflow as tf"},
        module_list=None,                 # tf.Module tracks plain lists of submodules
        parameter="P.variable({name}, {args})",
        super_init="super().__init__()",
        # TF modules have no train/eval mode: Flax's default (and Keras' training=False) stays.
        deterministic_default="True",
        deterministic_annotation="bool",
        reserved=TF_MODULE_API,
    ),
}


@dataclasses.dataclass(frozen=True)
class Runtime:
    """What a target's hand-written runtime provides, read statically (no framework import)."""
    ops: dict          # JAX spelling → shim name
    prims: frozenset   # names `P.<name>` may use
    chex: frozenset    # names `chex.<name>` may use

    @classmethod
    def load(cls, target: Target) -> "Runtime":
        folder = target.root / "runtime"
        ops_tree = ast.parse((folder / "ops.py").read_text())
        table, defined = None, _defined_names(ops_tree)
        for node in ops_tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "JAX_NAMES"
                                                    for t in node.targets):
                table = ast.literal_eval(node.value)
        if table is None:
            raise RuntimeError(f"{folder / 'ops.py'}: defines no JAX_NAMES allow-list")
        undefined = sorted(v for v in table.values() if v not in defined)
        if undefined:
            raise RuntimeError(f"{folder / 'ops.py'}: JAX_NAMES maps to undefined names {undefined}")
        prims = _defined_names(ast.parse((folder / "prims.py").read_text()))
        chex = _defined_names(ast.parse((folder / "chex.py").read_text()))
        return cls(table, frozenset(prims), frozenset(chex))


def _defined_names(tree: ast.Module) -> set:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                names |= {e.id for e in (t.elts if isinstance(t, ast.Tuple) else [t]) if isinstance(e, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
    return names


# == sources =====================================================================================

@dataclasses.dataclass(frozen=True)
class Source:
    path: pathlib.Path            # absolute
    kind: str                     # "layers" | "models"
    name: str                     # layer module name or family folder

    @property
    def rel(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    def output(self, target: Target) -> pathlib.Path:
        return target.root / self.kind / f"{self.name}.py"


HAND_WRITTEN_LAYERS = {"__init__.py", "prims.py"}


def discover_sources(root: pathlib.Path = ROOT) -> list[Source]:
    layers = [Source(p, "layers", p.stem) for p in sorted((root / "core" / "layers").glob("*.py"))
              if p.name not in HAND_WRITTEN_LAYERS]
    models = [Source(p, "models", p.parent.name) for p in sorted((root / "core" / "models").glob("*/modeling.py"))]
    return layers + models


def registry_problems(sources: Sequence[Source]) -> list[str]:
    """Registered families whose canonical module has no source file (framework-free import)."""
    from core import registry
    families = {s.name for s in sources if s.kind == "models"}
    problems = []
    for model_type, family in sorted(registry.FAMILIES.items()):
        parts = family.modeling.split(".")
        if parts[:2] != ["core", "models"] or parts[3:] != ["modeling"] or parts[2] not in families:
            problems.append(f"core/registry.py: model_type {model_type!r} names {family.modeling}, which is not "
                            "core/models/<family>/modeling.py of an existing folder; fix the registry entry")
    return problems


# == the portable subset: lint ====================================================================

@dataclasses.dataclass(frozen=True, order=True)
class Violation:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class TranspileError(Exception):
    """The source is outside the portable subset; `violations` lists every problem."""

    def __init__(self, violations: Sequence[Violation]):
        self.violations = sorted(set(violations))
        super().__init__("\n".join(map(str, self.violations)))


STDLIB_IMPORTS = {"__future__", "math", "dataclasses", "typing", "functools", "enum", "collections",
                  "itertools", "operator"}
FRAMEWORK_FREE_CORE = re.compile(r"core\.(outputs|configuration|models\.\w+\.config)\Z")
STANDARD_ALIASES = {"jax": "jax", "jax.numpy": "jnp", "flax.linen": "nn", "chex": "chex", "core.layers.prims": "P"}
JAX_OP_NAMESPACES = ("jax.numpy.", "jax.nn.", "jax.lax.")
ARRAY_METHODS = {"reshape", "astype", "transpose", "swapaxes", "sum", "mean", "max", "min", "prod", "std", "var",
                 "clip", "squeeze", "repeat", "flatten", "ravel", "view", "take", "item", "tolist", "argmax",
                 "argmin", "cumsum", "dot", "any", "all", "round", "expand_dims", "block_until_ready"}
ARRAY_ATTRIBUTES = {"T": "jnp.transpose(x, axes) with explicit axes", "mT": "jnp.swapaxes(x, -1, -2)",
                    "at": "jnp.where(...) or jax.lax.dynamic_update_slice(...)",
                    "shape": "jnp.shape(x) (a tuple of ints in every framework)",
                    "size": "jnp.size(x) / math.prod(jnp.shape(x))"}
FLAX_STATE = {"sow", "variable", "make_rng", "put_variable", "get_variable", "has_variable", "is_initializing",
              "is_mutable_collection", "has_rng", "scope", "variables", "bind", "unbind", "init", "apply",
              "init_with_output", "perturb", "lazy_init", "path"}
LIFTED = {"scan", "remat", "checkpoint", "vmap", "jit", "map_variables", "while_loop", "cond", "switch",
          "fori_loop", "custom_vjp", "jvp", "vjp", "grad", "value_and_grad", "pmap", "shard_map"}
DTYPE_NAMES = {"float32", "float16", "bfloat16", "float64", "int8", "int16", "int32", "int64", "uint8",
               "uint32", "bool_", "complex64"}


def _dotted(node: cst.CSTNode) -> Optional[str]:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = _dotted(node.value)
        return head and f"{head}.{node.attr.value}"
    return None


def _module_name(node) -> str:
    return _dotted(node) if node is not None else ""


def _import_aliases(module: cst.Module) -> dict:
    """Local name → qualified module for the JAX / Flax / chex / prims imports."""
    aliases = {}
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for node in stmt.body:
            if isinstance(node, cst.Import):
                for alias in node.names:
                    name = _dotted(alias.name)
                    local = alias.asname.name.value if alias.asname else name.split(".")[0]
                    aliases[local] = name if alias.asname else name.split(".")[0]
            elif isinstance(node, cst.ImportFrom) and not isinstance(node.names, cst.ImportStar):
                base = _module_name(node.module)
                for alias in node.names:
                    local = alias.asname.name.value if alias.asname else alias.name.value
                    aliases[local] = f"{base}.{_dotted(alias.name)}"
    return {k: v for k, v in aliases.items() if v.split(".")[0] in ("jax", "flax", "chex") or v == "core.layers.prims"}


def _imported_names(module: cst.Module, only=lambda module_name: True) -> set:
    """Names the module's imports bind (`only`: keep those imported from matching modules)."""
    names = set()
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for node in stmt.body:
                if isinstance(node, cst.Import):
                    names |= {alias.asname.name.value if alias.asname else _dotted(alias.name).split(".")[0]
                              for alias in node.names if only(_dotted(alias.name))}
                elif isinstance(node, cst.ImportFrom) and not isinstance(node.names, cst.ImportStar):
                    if only(_module_name(node.module)):
                        names |= {alias.asname.name.value if alias.asname else alias.name.value for alias in node.names}
    return names


def _resolve(node: cst.CSTNode, aliases: dict) -> Optional[str]:
    """`jnp.reshape` → "jax.numpy.reshape" (None unless the head is a JAX / Flax / prims alias)."""
    dotted = _dotted(node)
    if dotted is None:
        return None
    head, _, rest = dotted.partition(".")
    if head not in aliases:
        return None
    return aliases[head] + ("." + rest if rest else "")


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))


def _self_attr(node: cst.CSTNode) -> Optional[str]:
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
        return node.attr.value
    return None


def _is_module_class(node: cst.ClassDef, aliases: dict) -> bool:
    return any(_resolve(base.value, aliases) == "flax.linen.Module" for base in node.bases)


class Linter(cst.CSTVisitor):
    """Collects every portable-subset violation of one canonical file."""

    METADATA_DEPENDENCIES = (ParentNodeProvider,)   # positions are resolved only if something is wrong

    def __init__(self, rel: str, aliases: dict, targets: Sequence[Target], runtimes: dict,
                 canonical_layers: Iterable[str]):
        super().__init__()
        self.rel, self.aliases, self.targets, self.runtimes = rel, aliases, targets, runtimes
        self.canonical_layers = set(canonical_layers)
        self.module_names: set = set()       # every name an import binds (receivers that are modules)
        self.canonical_names: set = set()    # names imported from canonical modules (maybe module classes)
        self.module_classes: set = set()     # module classes defined so far in this file
        self.found: list[tuple] = []         # (node, message)
        self.classes: list[bool] = []        # is-module flags of the enclosing classes
        self.functions: list[str] = []       # names of the enclosing functions

    # -- helpers ----------------------------------------------------------------------------------
    def report(self, node: cst.CSTNode, message: str) -> None:
        self.found.append((node, message))

    def parent(self, node: cst.CSTNode) -> Optional[cst.CSTNode]:
        return self.get_metadata(ParentNodeProvider, node, None)

    @property
    def in_module_class(self) -> bool:
        return bool(self.classes) and self.classes[-1]

    @property
    def in_setup(self) -> bool:
        return self.in_module_class and len(self.functions) == 1 and self.functions[0] == "setup"

    # -- imports ------------------------------------------------------------------------------------
    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            name = _dotted(alias.name)
            local = alias.asname.name.value if alias.asname else None
            top = name.split(".")[0]
            if name in STANDARD_ALIASES and (local or name) == STANDARD_ALIASES[name]:
                continue
            if name in STANDARD_ALIASES:
                self.report(node, f"`import {name}` as {local or name!r}: import it as `import {name}"
                                  f"{' as ' + STANDARD_ALIASES[name] if STANDARD_ALIASES[name] != name else ''}` "
                                  "(the transpiler maps the standard names)")
            elif top in STDLIB_IMPORTS:
                continue
            elif top == "core":
                self._check_core_import(node, name)
            else:
                self.report(node, f"`import {name}`: canonical code imports only jax / flax.linen / chex, core "
                                  f"modules and the standard library ({', '.join(sorted(STDLIB_IMPORTS))}); "
                                  "move framework-specific code into a primitive")

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative:
            self.report(node, "relative import: write `from core.… import …` (generated files live elsewhere)")
            return
        module = _module_name(node.module)
        top = module.split(".")[0]
        names = [] if isinstance(node.names, cst.ImportStar) else [
            (_dotted(a.name), a.asname.name.value if a.asname else None) for a in node.names]
        if isinstance(node.names, cst.ImportStar):
            self.report(node, f"`from {module} import *`: import names explicitly")
            return
        if module == "flax" and names == [("linen", "nn")]:
            return
        if top in ("jax", "flax", "chex"):
            self.report(node, f"`from {module} import …`: use `import jax`, `import jax.numpy as jnp`, "
                              "`import flax.linen as nn`, `import chex` and qualified names")
        elif top in STDLIB_IMPORTS:
            return
        elif top == "core":
            for name, local in names:
                full = f"{module}.{name}"
                if full == "core.layers.prims":
                    if local != "P":
                        self.report(node, "import the primitives as `from core.layers import prims as P`")
                elif module == "core.layers.prims":
                    self.report(node, f"`from core.layers.prims import {name}`: use `from core.layers import "
                                      f"prims as P` and `P.{name}` (each port maps `P` to its twins)")
                elif module in ("core", "core.layers", "core.models") or re.fullmatch(r"core\.models\.\w+", module):
                    self._check_core_import(node, full)
                else:
                    self._check_core_import(node, module)
                    break
        else:
            self.report(node, f"`from {module} import …`: canonical code imports only jax / flax.linen / chex, "
                              "core modules and the standard library; move framework-specific code into a primitive")

    def _check_core_import(self, node: cst.CSTNode, module: str) -> None:
        if FRAMEWORK_FREE_CORE.match(module):
            return
        if module.startswith("core.layers.") and module.split(".")[2] in self.canonical_layers:
            return
        if re.fullmatch(r"core\.models\.\w+\.modeling", module):
            return
        self.report(node, f"import of `{module}`: canonical code may import core.outputs, core.configuration, "
                          "core.models.<family>.config, canonical layers (core.layers.<name>) and other families' "
                          "modeling modules only")

    # -- classes and functions ----------------------------------------------------------------------
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        is_module = _is_module_class(node, self.aliases)
        self.classes.append(is_module)
        if is_module:
            self.module_classes.add(node.name.value)
        inherited = [b for b in node.bases if _dotted(b.value) in self.module_classes | self.canonical_names]
        if inherited and not is_module:
            self.report(node, f"class {node.name.value}: a module subclasses nn.Module only (here "
                              f"{_dotted(inherited[0].value)}); reuse other modules by composition (an attribute)")
            return
        if not is_module:
            for deco in node.decorators:
                if not (_dotted(deco.decorator) == "dataclasses.dataclass"
                        or (isinstance(deco.decorator, cst.Call)
                            and _dotted(deco.decorator.func) == "dataclasses.dataclass")):
                    self.report(deco, f"decorator on class {node.name.value}: only @dataclasses.dataclass is "
                                      "portable on plain classes")
            return
        for deco in node.decorators:
            self.report(deco, f"decorator on module class {node.name.value}: Flax modules are plain "
                              "`class X(nn.Module)` dataclasses")
        for base in node.bases:
            if _resolve(base.value, self.aliases) != "flax.linen.Module":
                self.report(base, f"class {node.name.value}: a module subclasses nn.Module only; reuse other "
                                  "modules by composition (an attribute) or import")
        for stmt in node.body.body:
            if _is_docstring(stmt) or isinstance(stmt, cst.FunctionDef):
                if isinstance(stmt, cst.FunctionDef) and stmt.name.value in ("__init__", "__post_init__"):
                    self.report(stmt, f"{node.name.value}.{stmt.name.value}: define submodules in setup(); "
                                      "fields are the constructor")
                continue
            if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
                small = stmt.body[0]
                if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                    self._check_attribute_name(small.target, small.target.value, "field")
                    if small.value is not None and isinstance(small.value, cst.Call) and \
                            _dotted(small.value.func) in ("dataclasses.field", "field"):
                        self.report(small, "dataclasses.field(...) default: give the field a plain default")
                    continue
                if isinstance(small, cst.Assign) and all(isinstance(t.target, cst.Name) for t in small.targets):
                    continue
            self.report(stmt, f"class {node.name.value}: unsupported statement in a module class body (fields, "
                              "constants, a docstring and methods only)")

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.classes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions.append(node.name.value)
        for deco in node.decorators:
            if _resolve(deco.decorator, self.aliases) == "flax.linen.compact":
                self.report(deco, f"@nn.compact on {node.name.value}: create submodules in setup() as attributes "
                                  "(only primitives in core/layers/prims.py may be compact)")
            else:
                self.report(deco, f"decorator @{_dotted(deco.decorator) or '…'} on {node.name.value}: decorators "
                                  "(jit, partial, ...) are outside the portable subset; apply them to the model "
                                  "from outside")

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.functions.pop()

    def _check_attribute_name(self, node: cst.CSTNode, name: str, what: str) -> None:
        for target in self.targets:
            if name in target.reserved:
                self.report(node, f"{what} `{name}` clashes with `{name}` of the {target.name} module class; "
                                  "rename it")

    # -- names and attributes -----------------------------------------------------------------------
    def visit_Name(self, node: cst.Name) -> None:
        parent = self.parent(node)
        if node.value == "deterministic":
            if isinstance(parent, cst.Param) or (isinstance(parent, cst.Arg) and
                                                  (parent.value is node or parent.keyword is node)):
                return
            self.report(node, "`deterministic` is used other than passed on: the ports pass None (meaning "
                              "'follow train()/eval()') down to the primitives, so only pass it along and branch "
                              "on it inside a primitive")
            return
        if node.value in self.aliases and not isinstance(parent, (cst.Attribute, cst.AsName, cst.ImportAlias)):
            full = self.aliases[node.value]
            if full in STANDARD_ALIASES:
                self.report(node, f"bare `{node.value}`: use qualified names like `{node.value}.<name>(...)`")
            else:
                self.report(node, f"bare `{node.value}`: write it qualified, `{full}`, with the standard import aliases")

    def visit_Attribute(self, node: cst.Attribute) -> None:
        parent = self.parent(node)
        if isinstance(parent, cst.Attribute) and parent.value is node:
            return                                   # only the whole chain counts
        if isinstance(parent, (cst.ImportAlias, cst.ImportFrom)) or isinstance(parent, cst.Decorator):
            return
        full = _resolve(node, self.aliases)
        attr = node.attr.value
        if full is None:
            receiver = _dotted(node.value)
            if receiver == "self" and self.in_module_class and attr in FLAX_STATE:
                self.report(node, f"`self.{attr}`: mutable collections, implicit RNG and Flax scope methods are "
                                  "outside the portable subset; pass caches, keys and flags as arguments")
            elif attr in ARRAY_ATTRIBUTES and not (receiver and receiver.split(".")[0] in self.module_names):
                if not isinstance(parent, cst.Call) or parent.func is not node:
                    self.report(node, f"array attribute `.{attr}`: semantics differ across frameworks; "
                                      f"write {ARRAY_ATTRIBUTES[attr]}")
            return
        self._check_qualified(node, full)

    def _check_qualified(self, node: cst.CSTNode, full: str) -> None:
        if full == "flax.linen.Module" or full == "flax.linen.compact":
            return
        if full.startswith("flax.linen."):
            name = full[len("flax.linen."):]
            if name.split(".")[0] in LIFTED:
                self.report(node, f"`nn.{name}`: lifted transforms are outside the portable subset; use P.Repeat "
                                  "for a scan over layers (remat=True for rematerialisation)")
            elif name.startswith("initializers"):
                self.report(node, f"`nn.{name}`: use P.normal_init / P.zeros_init / P.ones_init")
            else:
                self.report(node, f"`nn.{name}`: flax.linen layers are not portable; use a primitive (P.Dense, "
                                  "P.Embed, P.LayerNorm, P.RMSNorm, P.Dropout, P.AttentionCore, P.Repeat, P.act)")
            return
        if full.startswith("core.layers.prims."):
            name = full.split(".")[3]
            for target in self.targets:
                if name not in self.runtimes[target.name].prims:
                    self.report(node, f"`P.{name}` has no twin in {target.package}.runtime.prims; write one "
                                      "(with its test) before using it")
            return
        if full.startswith("chex."):
            name = full.split(".")[1]
            for target in self.targets:
                if name not in self.runtimes[target.name].chex:
                    self.report(node, f"`chex.{name}` is not in {target.package}.runtime.chex; use "
                                      "chex.assert_rank / chex.assert_equal_shape, or add it there (with a test)")
            return
        spelled = full.replace("jax.numpy.", "jnp.", 1)
        if full.startswith("jax.random."):
            self.report(node, f"`{spelled}`: RNG outside the primitives; dropout comes from P.Dropout, other keys "
                              "are passed in as arguments")
            return
        if full.split(".")[-1] in LIFTED and not full.startswith("jax.numpy."):
            self.report(node, f"`{spelled}`: transforms are outside the portable subset; use P.Repeat for a "
                              "scan over layers and apply jit/grad to the model from outside")
            return
        if not full.startswith(JAX_OP_NAMESPACES):
            self.report(node, f"`{spelled}` is not portable: use jnp.*, jax.nn.* and jax.lax.* functions from the "
                              "ops allow-list (JAX_NAMES in ports/<target>/runtime/ops.py)")
            return
        for target in self.targets:
            if full not in self.runtimes[target.name].ops:
                self.report(node, f"`{spelled}` is not in the portable op set: add it to JAX_NAMES in "
                                  f"{target.package}.runtime.ops (with a test in tests/test_{target.name}_ops.py) "
                                  "or write the code with allowed ops")

    # -- calls ----------------------------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        full = _resolve(func, self.aliases)
        if full is None and isinstance(func, cst.Attribute):
            method = func.attr.value
            receiver = _dotted(func.value)
            if method in ARRAY_METHODS and not (receiver and receiver.split(".")[0] in self.module_names):
                self.report(node, f"array method `.{method}()`: semantics differ across frameworks; write "
                                  f"jnp.{method}(x, ...) instead")
            if receiver == "self" and method == "param" and not self._param_ok(node):
                self.report(node, "`self.param(...)` outside `self.<name> = self.param(\"<name>\", init, shape, "
                                  "dtype)` in setup(): create raw params in setup, named like their attribute")
        if full is not None and full.split(".")[-1] in DTYPE_NAMES and full.startswith("jax.numpy."):
            self.report(node, f"calling the dtype `{_dotted(func)}(...)`: write jnp.asarray(x, {_dotted(func)})")
        if full == "jax.numpy.transpose" and len(node.args) < 2:
            self.report(node, "jnp.transpose without axes: pass the permutation explicitly (torch and numpy "
                              "disagree on the default)")
        if self.in_setup and any(a.keyword is not None and a.keyword.value == "name" for a in node.args):
            callee = _dotted(func) or ""
            if callee.split(".")[-1][:1].isupper():
                self.report(node, f"`{callee}(..., name=...)`: a submodule's name is its attribute name; drop name=")

    def _param_ok(self, node: cst.Call) -> bool:
        parent = self.parent(node)
        if not self.in_setup or not isinstance(parent, cst.Assign) or len(parent.targets) != 1:
            return False
        attr = _self_attr(parent.targets[0].target)
        if attr is None or not node.args:
            return False
        first = node.args[0].value
        if not isinstance(first, cst.SimpleString) or first.evaluated_value != attr:
            self.report(node, f"self.param name {cst.Module([]).code_for_node(first)} differs from its attribute: "
                              f"name it \"{attr}\" (Flax param paths are attribute paths in every port)")
        return True

    # -- statements -----------------------------------------------------------------------------------
    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            attr = _self_attr(target.target)
            if attr is None or not self.in_module_class:
                continue
            if not self.in_setup:
                self.report(node, f"`self.{attr} = …` outside setup(): modules are frozen after setup; return "
                                  "values instead")
                continue
            self._check_attribute_name(node, attr, "attribute")
            value = node.value
            if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add) and any(
                    isinstance(side, (cst.List, cst.ListComp, cst.Tuple)) for side in (value.left, value.right)):
                self.report(node, f"`self.{attr} = [...] + ...`: the ports register a list of submodules only "
                                  "when it is one list literal or comprehension; build it as one (e.g. "
                                  "`[Block(..., first=i == 0) for i in range(n)]`)")
            if isinstance(value, cst.Call) and (_resolve(value.func, self.aliases) or "").startswith(JAX_OP_NAMESPACES):
                self.report(node, f"`self.{attr}` is an array computed in setup(): compute it in __call__ (or "
                                  "make it a param); setup creates submodules, params and Python values")

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        attr = _self_attr(node.target)
        if attr is not None and self.in_module_class:
            self.report(node, f"`self.{attr} …= …`: modules are frozen after setup; return values instead")

    def visit_Slice(self, node: cst.Slice) -> None:
        step = node.step
        if isinstance(step, cst.UnaryOperation) and isinstance(step.operator, cst.Minus):
            self.report(node, "slice with a negative step: torch has none; use jnp.flip (add it to the ops)")


def lint(source: cst.Module, rel: str, targets: Sequence[Target], runtimes: dict,
         canonical_layers: Iterable[str], wrapper: Optional[MetadataWrapper] = None) -> list[Violation]:
    """Every portable-subset violation of `source` (for all `targets`), sorted."""
    wrapper = wrapper or MetadataWrapper(source, unsafe_skip_copy=True)
    linter = Linter(rel, _import_aliases(source), targets, runtimes, canonical_layers)
    linter.module_names = _imported_names(source)
    linter.canonical_names = _imported_names(source, only=lambda m: bool(
        re.fullmatch(r"core\.models\.\w+\.modeling|core\.layers\.\w+", m)) and m != "core.layers.prims")
    wrapper.visit(linter)
    if not linter.found:
        return []
    positions = wrapper.resolve(PositionProvider)
    return sorted({Violation(rel, positions[node].start.line, message) for node, message in linter.found})


# == the rewrite =================================================================================

class _Shift(cst.CSTTransformer):
    """Move continuation lines (aligned under an opening parenthesis) by `-delta` columns."""

    def __init__(self, delta: int):
        super().__init__()
        self.delta = delta

    def leave_ParenthesizedWhitespace(self, original_node, updated_node):
        width = max(0, len(updated_node.last_line.value) - self.delta)
        return updated_node.with_changes(last_line=cst.SimpleWhitespace(" " * width))


def _shift(nodes, delta: int):
    if not delta:
        return nodes
    shifter = _Shift(delta)
    return [n.visit(shifter) for n in nodes]


# Parsed snippets are immutable nodes: parse each distinct one once (parsing dominates otherwise).
_expression = functools.lru_cache(maxsize=None)(cst.parse_expression)
_statement = functools.lru_cache(maxsize=None)(cst.parse_statement)


def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _prefix_length(template: str, part: str) -> int:
    """Columns before `{part}` in `template` (where the spliced code starts)."""
    return template.index("{" + part + "}")


def _template(template: str, **parts) -> cst.BaseExpression:
    """Parse `template`, then put `parts` (cst nodes, or lists of cst.Arg) at `{name}`."""
    marked = template
    for name in parts:
        marked = marked.replace("{" + name + "}", f"__{name}__")
    expr = _expression(marked)

    class Fill(cst.CSTTransformer):
        def leave_Call(self, original_node, updated_node):
            args = []
            for i, arg in enumerate(updated_node.args):
                key = arg.value.value.strip("_") if isinstance(arg.value, cst.Name) else None
                if key in parts and isinstance(parts[key], list):
                    spliced = list(parts[key])
                    if i < len(updated_node.args) - 1:       # more template args follow
                        spliced[-1] = spliced[-1].with_changes(comma=arg.comma)
                    args.extend(spliced)
                else:
                    args.append(arg)
            return updated_node.with_changes(args=args)

        def leave_Name(self, original_node, updated_node):
            key = updated_node.value.strip("_")
            if updated_node.value.startswith("__") and key in parts and not isinstance(parts[key], list):
                return parts[key]
            return updated_node

    return expr.visit(Fill())


_AUG_OPERATORS = {
    cst.AddAssign: cst.Add, cst.SubtractAssign: cst.Subtract, cst.MultiplyAssign: cst.Multiply,
    cst.DivideAssign: cst.Divide, cst.FloorDivideAssign: cst.FloorDivide, cst.ModuloAssign: cst.Modulo,
    cst.PowerAssign: cst.Power, cst.MatrixMultiplyAssign: cst.MatrixMultiply, cst.BitAndAssign: cst.BitAnd,
    cst.BitOrAssign: cst.BitOr, cst.BitXorAssign: cst.BitXor, cst.LeftShiftAssign: cst.LeftShift,
    cst.RightShiftAssign: cst.RightShift,
}
_LOW_PRECEDENCE = (cst.BinaryOperation, cst.BooleanOperation, cst.IfExp, cst.Comparison, cst.Lambda,
                   cst.UnaryOperation, cst.NamedExpr)

_IMPORT_PLACEHOLDER = "__rosetta_framework_imports__"


class PortTransformer(cst.CSTTransformer):
    """Rewrites one lint-clean canonical module for `target` (see the module docstring)."""

    METADATA_DEPENDENCIES = (ParentNodeProvider,)

    def __init__(self, target: Target, runtime: Runtime, aliases: dict, canonical_layers: Iterable[str]):
        super().__init__()
        self.target, self.runtime, self.aliases = target, runtime, aliases
        self.canonical_layers = set(canonical_layers)
        self.classes: list[bool] = []
        self.functions: list[str] = []
        self.placed_placeholder = False

    # -- context ------------------------------------------------------------------------------------
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.append(_is_module_class(node, self.aliases))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions.append(node.name.value)

    @property
    def in_setup(self) -> bool:
        return bool(self.classes) and self.classes[-1] and self.functions[-1:] == ["setup"] and len(self.functions) == 1

    # -- imports ------------------------------------------------------------------------------------
    def _port_module(self, module: str) -> Optional[str]:
        """The generated (or runtime) module standing for canonical `module`, or None to keep it."""
        if module == "core.layers.prims":
            return f"{self.target.runtime}.prims"
        parts = module.split(".")
        if parts[:2] == ["core", "layers"] and len(parts) == 3 and parts[2] in self.canonical_layers:
            return f"{self.target.package}.layers.{parts[2]}"
        if len(parts) == 4 and parts[:2] == ["core", "models"] and parts[3] == "modeling":
            return f"{self.target.package}.models.{parts[2]}"
        return None

    def _placeholder_or_remove(self):
        if self.placed_placeholder:
            return cst.RemoveFromParent()
        self.placed_placeholder = True
        return cst.Expr(cst.Name(_IMPORT_PLACEHOLDER))

    def leave_Import(self, original_node, updated_node):
        names = [_dotted(a.name) for a in updated_node.names]
        if all(n.split(".")[0] in ("jax", "flax", "chex") for n in names):
            return self._placeholder_or_remove()
        new_names = []
        for alias in updated_node.names:
            port = self._port_module(_dotted(alias.name))
            new_names.append(alias if port is None else alias.with_changes(name=_expression(port)))
        return updated_node.with_changes(names=new_names)

    def leave_ImportFrom(self, original_node, updated_node):
        module = _module_name(updated_node.module)
        if module.split(".")[0] in ("jax", "flax", "chex"):
            return self._placeholder_or_remove()
        port = self._port_module(module)
        if port is not None:
            names = updated_node.names
            if updated_node.lpar is not None and not isinstance(names, cst.ImportStar):
                names = _shift(names, len(module) - len(port))      # keep wrapped names aligned
            return updated_node.with_changes(module=_expression(port), names=names)
        if isinstance(updated_node.names, cst.ImportStar):
            return updated_node
        # `from core.layers import attention as A, prims as P` → one statement per destination.
        groups: dict = {}
        for alias in updated_node.names:
            port = self._port_module(f"{module}.{_dotted(alias.name)}")
            if port is None:
                groups.setdefault(module, []).append(alias)
            else:
                package, _, leaf = port.rpartition(".")
                groups.setdefault(package, []).append(alias.with_changes(name=cst.Name(leaf)))
        if list(groups) == [module]:
            return updated_node
        statements = []
        for package, aliases in groups.items():
            aliases = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in aliases]
            statements.append(updated_node.with_changes(module=_expression(package), names=aliases))
        return cst.FlattenSentinel(statements)

    def leave_SimpleStatementLine(self, original_node, updated_node):
        # A multi-import FlattenSentinel lands inside one line joined by ';': split it back.
        if len(updated_node.body) > 1 and all(isinstance(s, cst.ImportFrom) for s in updated_node.body):
            lines = [updated_node.with_changes(body=[updated_node.body[0].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)])]
            for small in updated_node.body[1:]:
                lines.append(cst.SimpleStatementLine(body=[small.with_changes(semicolon=cst.MaybeSentinel.DEFAULT)]))
            return cst.FlattenSentinel(lines)
        return updated_node

    # -- names --------------------------------------------------------------------------------------
    def leave_Attribute(self, original_node, updated_node):
        parent = self.get_metadata(ParentNodeProvider, original_node, None)
        if isinstance(parent, cst.Attribute) and parent.value is original_node:
            return updated_node
        full = _resolve(original_node, self.aliases)
        if full is None:
            return updated_node
        if full == "flax.linen.Module":
            return _expression(self.target.base_class)
        if full.startswith(JAX_OP_NAMESPACES):
            return cst.Attribute(cst.Name("ops"), cst.Name(self.runtime.ops[full]))
        return updated_node           # P.* and chex.* keep their spelling (runtime twins)

    def leave_Call(self, original_node, updated_node):
        delta = len(_code(original_node.func)) - len(_code(updated_node.func))
        if delta and not isinstance(updated_node.whitespace_before_args, cst.ParenthesizedWhitespace):
            updated_node = updated_node.with_changes(args=_shift(updated_node.args, delta))
        return updated_node

    def leave_Param(self, original_node, updated_node):
        default = updated_node.default
        if (updated_node.name.value == "deterministic" and isinstance(default, cst.Name) and default.value == "True"
                and self.target.deterministic_default != "True"):
            changes = {"default": _expression(self.target.deterministic_default)}
            if updated_node.annotation is not None:
                changes["annotation"] = updated_node.annotation.with_changes(
                    annotation=_expression(self.target.deterministic_annotation))
            return updated_node.with_changes(**changes)
        return updated_node

    # -- statements ---------------------------------------------------------------------------------
    def leave_AugAssign(self, original_node, updated_node):
        # `x += y` mutates a torch tensor in place (aliases too); JAX always makes a new array.
        right = updated_node.value
        if isinstance(right, _LOW_PRECEDENCE) and not right.lpar:
            right = right.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        operator = _AUG_OPERATORS[type(updated_node.operator)]()
        old_prefix = len(_code(updated_node)) - len(_code(updated_node.value))
        new = cst.Assign(targets=[cst.AssignTarget(updated_node.target)],
                         value=cst.BinaryOperation(left=updated_node.target, operator=operator, right=right))
        new_prefix = len(_code(new)) - len(_code(right))
        return new.with_changes(value=new.value.with_changes(right=_shift([right], old_prefix - new_prefix)[0]))

    def leave_Assign(self, original_node, updated_node):
        if not self.in_setup or len(updated_node.targets) != 1 or _self_attr(updated_node.targets[0].target) is None:
            return updated_node
        value = updated_node.value
        if isinstance(value, (cst.List, cst.ListComp, cst.Tuple)) and self.target.module_list:
            shifted = _shift([value], -_prefix_length(self.target.module_list, "value"))[0]
            return updated_node.with_changes(value=_template(self.target.module_list, value=shifted))
        if isinstance(value, cst.Call) and _dotted(value.func) == "self.param":
            name_arg, *init_args = value.args
            init_args[-1] = init_args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            delta = len("self.param(") - _prefix_length(self.target.parameter, "args")
            if isinstance(value.whitespace_before_args, cst.ParenthesizedWhitespace):
                delta = 0
            new = _template(self.target.parameter, args=_shift(init_args, delta), name=name_arg.value)
            return updated_node.with_changes(value=new)
        return updated_node

    # -- functions and classes ----------------------------------------------------------------------
    def leave_FunctionDef(self, original_node, updated_node):
        self.functions.pop()
        return updated_node

    def leave_ClassDef(self, original_node, updated_node):
        is_module = self.classes.pop()
        if not is_module:
            return updated_node
        doc, constants, fields, methods, setup = [], [], [], [], None
        for stmt in updated_node.body.body:
            if _is_docstring(stmt) and not (fields or methods or constants):
                doc.append(stmt)
            elif isinstance(stmt, cst.FunctionDef):
                if stmt.name.value == "setup":
                    setup = stmt
                else:
                    methods.append(stmt)
            elif isinstance(stmt.body[0], cst.AnnAssign):
                fields.append(stmt.body[0])
            else:
                constants.append(stmt)
        init = self._constructor(fields, setup, first=not (doc or constants))
        renamed = []
        for method in methods:
            if method.name.value == "__call__":
                delta = len("__call__") - len(self.target.call_method)
                params = method.params
                if not isinstance(method.whitespace_before_params, cst.ParenthesizedWhitespace):
                    params = params.visit(_Shift(delta))
                method = method.with_changes(name=cst.Name(self.target.call_method), params=params)
            renamed.append(method)
        bases = [cst.Arg(_expression(self.target.base_class))]
        return updated_node.with_changes(bases=bases, body=updated_node.body.with_changes(
            body=doc + constants + [init] + renamed))

    def _constructor(self, fields: list, setup: Optional[cst.FunctionDef], first: bool) -> cst.FunctionDef:
        params = ["self"]
        for field in fields:
            text = field.target.value
            if field.annotation is not None:
                text += ": " + _code(field.annotation.annotation)
            if field.value is not None:
                text += " = " + _code(field.value)
            params.append(text)
        header = _wrap_signature("def __init__(", params, "):", indent=4)
        body = [_statement(self.target.super_init)]
        body += [_statement(f"self.{f.target.value} = {f.target.value}") for f in fields]
        block = cst.IndentedBlock(body=[])
        if setup is not None:
            setup_body = list(setup.body.body)
            if setup_body and _is_docstring(setup_body[0]):
                setup_body = setup_body[1:]
            body += setup_body
            block = setup.body
        init = _statement(header + "\n    pass\n")
        leading = [] if first else (list(setup.leading_lines) if setup is not None else [cst.EmptyLine()])
        if not first and not leading:
            leading = [cst.EmptyLine()]
        return init.with_changes(body=block.with_changes(body=body), leading_lines=leading)

    # -- the module ---------------------------------------------------------------------------------
    def leave_Module(self, original_node, updated_node):
        used = _used_heads(updated_node)
        framework = [self.target.framework_imports[name] for name in sorted(self.target.framework_imports)
                     if name in used]
        runtime = sorted(name for name in ("chex", "ops") if name in used)
        has_prims = _imports_prims(updated_node, self.target)
        if "P" in used and not has_prims:
            runtime.append("prims as P")
        body = []
        merged = False
        for stmt in updated_node.body:
            if _is_placeholder(stmt):
                lines = [_statement(code + "\n") for code in framework]
                if runtime and not has_prims:
                    lines.append(_statement(f"from {self.target.runtime} import {', '.join(runtime)}\n"))
                    merged = True
                if lines:
                    lines[0] = lines[0].with_changes(leading_lines=stmt.leading_lines)
                body.extend(lines)
                continue
            if not merged and runtime and _is_prims_import(stmt, self.target):
                names = [cst.ImportAlias(cst.Name(n)) for n in runtime] + [
                    a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in stmt.body[0].names]
                names = [n.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                         for n in names[:-1]] + [names[-1]]
                stmt = stmt.with_changes(body=[stmt.body[0].with_changes(names=names)])
                merged = True
            body.append(stmt)
        if runtime and not merged:
            raise RuntimeError("generated code uses the runtime but no import could be placed")
        return updated_node.with_changes(body=body)


def _is_placeholder(stmt) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, cst.Name) and stmt.body[0].value.value == _IMPORT_PLACEHOLDER)


def _is_prims_import(stmt, target: Target) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], cst.ImportFrom)
            and _module_name(stmt.body[0].module) == target.runtime
            and any(_dotted(a.name) == "prims" for a in stmt.body[0].names))


def _imports_prims(module: cst.Module, target: Target) -> bool:
    return any(_is_prims_import(stmt, target) for stmt in module.body)


def _used_heads(module: cst.Module) -> set:
    """Names used as the head of an attribute chain (`ops` in `ops.reshape`)."""
    heads = set()

    class Visitor(cst.CSTVisitor):
        def visit_Attribute(self, node):
            head = node
            while isinstance(head, cst.Attribute):
                head = head.value
            if isinstance(head, cst.Name):
                heads.add(head.value)

        def visit_Import(self, node):
            return False

        def visit_ImportFrom(self, node):
            return False

    module.visit(Visitor())
    return heads


def _wrap_signature(opening: str, params: list, closing: str, indent: int) -> str:
    """`def f(a, b):` on one line, or with continuation lines aligned under the parenthesis."""
    one_line = opening + ", ".join(params) + closing
    if indent + len(one_line) <= LINE_LENGTH:
        return one_line
    lines, current = [], opening
    for i, param in enumerate(params):
        piece = param + (", " if i < len(params) - 1 else closing)
        if current.strip() and current != opening and indent + len(current) + len(piece.rstrip()) > LINE_LENGTH:
            lines.append(current.rstrip())
            current = " " * len(opening)
        current += piece
    lines.append(current)
    return "\n".join(lines)      # the enclosing block's indentation is added when the node is placed


# == files ========================================================================================

def header(source: Source, text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return (f"# Generated by `{COMMAND}` from {source.rel}: do not edit.\n"
            f"# Source sha256: {digest}\n")


def transpile_all(source: Source, targets: Sequence[Target], runtimes: dict, canonical_layers: Iterable[str],
                  text: Optional[str] = None) -> dict:
    """{target name: generated file} for `source`, linted once for every target; raises
    TranspileError listing every violation."""
    text = source.path.read_text() if text is None else text
    module = cst.parse_module(text)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)      # metadata is computed once
    violations = lint(module, source.rel, targets, runtimes, canonical_layers, wrapper)
    if violations:
        raise TranspileError(violations)
    generated = {}
    for target in targets:
        transformer = PortTransformer(target, runtimes[target.name], _import_aliases(module), canonical_layers)
        generated[target.name] = header(source, text) + wrapper.visit(transformer).code
    return generated


def transpile(source: Source, target: Target, runtime: Runtime, canonical_layers: Iterable[str],
              text: Optional[str] = None) -> str:
    """The generated file of `source` for one target (see `transpile_all`)."""
    return transpile_all(source, [target], {target.name: runtime}, canonical_layers, text)[target.name]


PACKAGE_DOCS = {
    "layers": "Generated ports of the canonical shared layers (core/layers); see scripts/transpile.py.",
    "models": "Generated ports of the canonical model families (core/models/*/modeling.py); see scripts/transpile.py.",
}


def expected_files(sources: Sequence[Source], targets: Sequence[Target], runtimes: dict,
                   canonical_layers: Iterable[str]) -> tuple[dict, list[Violation]]:
    """{output path: text} for `sources`, and the violations of the sources that failed lint."""
    files, violations = {}, []
    for target in targets:
        for kind, doc in PACKAGE_DOCS.items():
            files[target.root / kind / "__init__.py"] = f'"""{doc}"""\n'
    for source in sources:
        try:
            generated = transpile_all(source, targets, runtimes, canonical_layers)
        except TranspileError as e:
            violations.extend(e.violations)
            continue
        for target in targets:
            files[source.output(target)] = generated[target.name]
    return files, sorted(set(violations))


def _diff(path: pathlib.Path, want: str, limit: int = 40) -> str:
    have = path.read_text() if path.exists() else ""
    lines = list(difflib.unified_diff(have.splitlines(), want.splitlines(), f"{_rel(path)} (on disk)",
                                      f"{_rel(path)} (generated)", lineterm="", n=1))
    more = f"\n    ... {len(lines) - limit} more diff lines" if len(lines) > limit else ""
    return "\n".join("    " + line for line in lines[:limit]) + more


def _rel(path: pathlib.Path) -> str:
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def _stale(files: dict, targets: Sequence[Target]) -> list[pathlib.Path]:
    """Files in the generated folders that no source produces (their source was removed)."""
    folders = {t.root / kind for t in targets for kind in PACKAGE_DOCS}
    return sorted(p for folder in folders if folder.is_dir() for p in folder.glob("*.py") if p not in files)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="canonical sources to process (default: all)")
    parser.add_argument("--check", action="store_true", help="regenerate in memory and fail on any difference")
    parser.add_argument("--lint", action="store_true", help="only lint FILES (any path; default: all sources)")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="port(s) to generate (default: all)")
    args = parser.parse_args(argv)
    targets = [TARGETS[name] for name in (args.target or DEFAULT_TARGETS)]
    runtimes = {t.name: Runtime.load(t) for t in targets}
    all_sources = discover_sources()
    canonical_layers = [s.name for s in all_sources if s.kind == "layers"]

    if args.lint:
        paths = [pathlib.Path(f).resolve() for f in args.files] or [s.path for s in all_sources]
        violations = []
        for path in paths:
            violations += lint(cst.parse_module(path.read_text()), _rel(path), targets, runtimes, canonical_layers)
        for v in sorted(set(violations)):
            print(v)
        print(f"{len(paths)} file(s) linted, {len(set(violations))} violation(s)", file=sys.stderr)
        return 1 if violations else 0

    sources = all_sources
    if args.files:
        by_path = {s.path: s for s in all_sources}
        wanted = [pathlib.Path(f).resolve() for f in args.files]
        unknown = [str(p) for p in wanted if p not in by_path]
        if unknown:
            parser.error(f"not canonical sources: {', '.join(unknown)} (use --lint to lint any file)")
        sources = [by_path[p] for p in wanted]

    problems = registry_problems(all_sources) if not args.files else []
    files, violations = expected_files(sources, targets, runtimes, canonical_layers)
    for v in violations:
        print(v)
    for problem in problems:
        print(problem)
    failed_sources = {v.path for v in violations}
    if args.check:
        stale = [] if args.files else _stale(files, targets)
        differing = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
        for path in differing:
            print(f"{_rel(path)}: {'missing' if not path.exists() else 'differs from its source'}; run `{COMMAND}`")
            print(_diff(path, files[path]))
        for path in stale:
            print(f"{_rel(path)}: generated file without a canonical source; delete it (or restore its source)")
        ok = not (violations or problems or differing or stale)
        print(f"{COMMAND} --check: {'ok' if ok else 'FAILED'} ({len(files)} files, {len(violations)} violations, "
              f"{len(differing)} out of date, {len(stale)} stale)", file=sys.stderr)
        return 0 if ok else 1
    written = 0
    if not args.files:
        for path in _stale(files, targets):
            path.unlink()
            print(f"deleted {_rel(path)} (its canonical source is gone)", file=sys.stderr)
    for path, text in files.items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written += 1
    if failed_sources:
        print(f"not generated (fix the violations above): {', '.join(sorted(failed_sources))}", file=sys.stderr)
    print(f"{COMMAND}: {written} file(s) written, {len(files) - written} unchanged", file=sys.stderr)
    return 1 if (violations or problems) else 0


if __name__ == "__main__":
    sys.exit(main())
