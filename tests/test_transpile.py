"""The transpiler (`scripts/transpile.py`): the CI check on the real tree, the portable-subset
linter on a file breaking every rule, the rewrite on a small module, and check mode's failure
modes (out-of-date, stale and missing files, transpiler exceptions) on a copy of the tree."""
import hashlib
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from scripts import transpile as T

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "scripts.transpile", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_check_mode_passes_on_the_tree():
    """What CI runs: every generated file is exactly what the transpiler makes of its source."""
    result = run(["--check"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--check: ok" in result.stderr


# -- the linter -------------------------------------------------------------------------------------

# (source line, substring its violation message must contain; None: the line is fine)
BAD_MODULE = [
    ('"""A canonical module breaking every rule of the portable subset."""', None),
    ("import numpy as np", "canonical code imports only"),
    ("import jax", None),
    ("import jax.numpy as jnp", None),
    ("import jax.numpy as numpy_", "import it as `import jax.numpy as jnp`"),
    ("import flax.linen as nn", None),
    ("import chex", None),
    ("from jax.nn import softmax", "use `import jax`"),
    ("from . import sibling", "relative import"),
    ("from core.layers import prims as P", None),
    ("from core.layers.prims import Dense", "use `from core.layers import prims as P`"),
    ("from core.modeling import PretrainedModel", "import of `core.modeling`"),
    ("from core.models.bert.modeling import BertLayer", None),
    ("", None),
    ("", None),
    ("class Compact(nn.Module):", None),
    ("    features: int", None),
    ("    training: bool = False", "field `training` clashes"),
    ("    extra: list = dataclasses.field(default_factory=list)", "dataclasses.field"),
    ("    if True:", "unsupported statement in a module class body"),
    ("        pass", None),
    ("", None),
    ("    @nn.compact", "@nn.compact on __call__"),
    ("    def __call__(self, x):", None),
    ("        return nn.Dense(self.features)(x)", "flax.linen layers are not portable"),
    ("", None),
    ("    def __init__(self):", "define submodules in setup()"),
    ("        pass", None),
    ("", None),
    ("", None),
    ("class Bad(nn.Module):", None),
    ("    config: dict", None),
    ("", None),
    ("    def setup(self):", None),
    ('        self.dense = P.Dense(4, 4, name="proj")', "drop name="),
    ('        self.scale = self.param("gain", P.zeros_init(), (4,))', "differs from its attribute: name it \"scale\""),
    ("        self.table = jnp.zeros((4, 4))", "computed in setup()"),
    ("        self.norm = P.LocalResponseNorm(4)", "`P.LocalResponseNorm` has no twin"),
    ("        self.to = P.Dropout(0.1)", "attribute `to` clashes"),
    ("        self.init_fn = nn.initializers.normal(0.02)", "use P.normal_init"),
    ("        self.layers = [P.Dense(4, 4)] + [P.Dense(4, 4) for _ in range(2)]", "one list literal or comprehension"),
    ("", None),
    ("    def __call__(self, x, deterministic: bool = True):", None),
    ("        y = x.reshape(-1, 4)", "array method `.reshape()`"),
    ("        z = x.T", "array attribute `.T`"),
    ("        n = x.shape[0]", "array attribute `.shape`"),
    ("        x = x.at[0].set(1.0)", "array attribute `.at`"),
    ('        key = self.make_rng("dropout")', "`self.make_rng`"),
    ('        self.sow("intermediates", "y", y)', "`self.sow`"),
    ("        w = jnp.linalg.norm(x)", "`jnp.linalg.norm` is not in the portable op set"),
    ("        s = jnp.sort(x)", "`jnp.sort` is not in the portable op set"),
    ("        h = nn.scan(Bad)", "lifted transforms"),
    ("        r = jax.random.normal(key, (2,))", "RNG outside the primitives"),
    ("        t = jax.tree_util.tree_map(abs, x)", "is not portable"),
    ("        if deterministic:", "`deterministic` is used other than passed on"),
    ("            y = y * 2", None),
    ("        self.cache = y", "outside setup()"),
    ('        b = self.param("b", P.zeros_init(), (4,))', "`self.param(...)` outside"),
    ("        q = jnp.transpose(x)", "jnp.transpose without axes"),
    ("        f = jnp.float32(3)", "calling the dtype"),
    ("        rev = x[::-1]", "negative step"),
    ("        u = chex.assert_trees_all_close(x, y)", "`chex.assert_trees_all_close` is not in"),
    ("        g = softmax", "bare `softmax`: write it qualified, `jax.nn.softmax`"),
    ("        v = jnp", "bare `jnp`"),
    ("        return jax.jit(lambda t: t)(y)", "transforms are outside the portable subset"),
    ("", None),
    ("", None),
    ("class Child(BertLayer):", "a module subclasses nn.Module only"),
    ("    pass", None),
    ("", None),
    ("", None),
    ("@jax.jit", "decorator @jax.jit"),
    ("def helper(x):", None),
    ("    return x", None),
    ("", None),
    ("", None),
    ("@some_registry.register", "only @dataclasses.dataclass"),
    ("class Plain:", None),
    ("    pass", None),
]


def test_linter_reports_every_violation_with_file_and_line(tmp_path):
    bad = tmp_path / "bad_model.py"
    bad.write_text("\n".join(line for line, _ in BAD_MODULE) + "\n")
    result = run(["--lint", str(bad)])
    assert result.returncode == 1, result.stdout + result.stderr
    reported = result.stdout.splitlines()
    assert all(line.startswith(f"{bad}:") for line in reported), reported
    for number, (code, expected) in enumerate(BAD_MODULE, start=1):
        at_line = [line for line in reported if line.startswith(f"{bad}:{number}: ")]
        if expected is None:
            continue
        assert any(expected in line for line in at_line), (f"line {number} `{code.strip()}`: expected a violation "
                                                           f"containing {expected!r}, got {at_line}")
    # Every message says what is wrong and how to fix it (a colon or semicolon-separated hint).
    assert all(":" in line.split(": ", 1)[1] or ";" in line for line in reported)


def test_transpiling_a_bad_source_reports_instead_of_generating(tmp_path):
    source = T.Source(ROOT / "core" / "models" / "fake" / "modeling.py", "models", "fake")
    target = T.TARGETS["torch"]
    text = "import jax.numpy as jnp\n\n\ndef f(x):\n    return x.astype(jnp.float32)\n"
    with pytest.raises(T.TranspileError) as err:
        T.transpile(source, target, T.Runtime.load(target), [], text=text)
    assert str(err.value) == ("core/models/fake/modeling.py:5: array method `.astype()`: semantics differ across "
                              "frameworks; write jnp.astype(x, ...) instead")


def test_reserved_names_cover_torch_module_api():
    # Read torch's own API in a fresh interpreter: transformers monkeypatches nn.Module
    # (`smart_apply`) once any of its models has been built in this process.
    listing = subprocess.run([sys.executable, "-c", "import torch; print(' '.join(dir(torch.nn.Module)))"],
                             capture_output=True, text=True, check=True).stdout.split()
    public = {name for name in listing if not name.startswith("_")} | {"training"}
    assert public <= T.TORCH_MODULE_API, sorted(public - T.TORCH_MODULE_API)
    from ports.torch.runtime.module import Module
    own = {name for name in vars(Module) if not name.startswith("_")}
    assert own <= T.TORCH_MODULE_API, sorted(own - T.TORCH_MODULE_API)


def test_reserved_names_cover_tf_module_api():
    listing = subprocess.run([sys.executable, "-c", "import tensorflow as tf; print(' '.join(dir(tf.Module)))"],
                             capture_output=True, text=True, check=True).stdout.split()
    public = {name for name in listing if not name.startswith("_")}
    assert public <= T.TF_MODULE_API, sorted(public - T.TF_MODULE_API)
    from ports.tf.runtime.module import Module
    own = {name for name in vars(Module) if not name.startswith("_")}
    assert own <= T.TF_MODULE_API, sorted(own - T.TF_MODULE_API)


# -- the rewrite ------------------------------------------------------------------------------------

SNIPPET = '''\
"""A block (canonical)."""
import math

import chex
import jax
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import attention as A, prims as P


class Block(nn.Module):
    """Two dense layers."""
    features: int
    rate: float = 0.0
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.layers = [P.Dense(self.features, self.features, dtype=self.dtype)
                       for _ in range(2)]
        self.gain = self.param("gain", P.ones_init(), (self.features,),
                               jnp.float32)
        self.drop = P.Dropout(self.rate)

    def __call__(self, x, mask=None, deterministic: bool = True):
        chex.assert_rank(x, 3)
        for layer in self.layers:
            x = layer(x)
        x += jax.nn.log_softmax(x,
                                axis=-1)
        return self.drop(x * self.gain, deterministic=deterministic), A.padding_mask(mask)


def scale(x, d: int):
    return x / math.sqrt(d) + jax.lax.dynamic_update_slice(x, x[:, :1], (0, 0, 0))


Alias = Block
'''

EXPECTED = '''\
"""A block (canonical)."""
import math

from torch import nn

from core import outputs
from ports.torch.layers import attention as A
from ports.torch.runtime import chex, ops, prims as P


class Block(P.Module):
    """Two dense layers."""

    def __init__(self, features: int, rate: float = 0.0, dtype: ops.dtype = ops.float32):
        super().__init__()
        self.features = features
        self.rate = rate
        self.dtype = dtype
        self.layers = nn.ModuleList([P.Dense(self.features, self.features, dtype=self.dtype)
                                     for _ in range(2)])
        self.gain = nn.Parameter(P.initialize(P.ones_init(), (self.features,),
                                              ops.float32))
        self.drop = P.Dropout(self.rate)

    def forward(self, x, mask=None, deterministic: bool | None = None):
        chex.assert_rank(x, 3)
        for layer in self.layers:
            x = layer(x)
        x = x + ops.log_softmax(x,
                                axis=-1)
        return self.drop(x * self.gain, deterministic=deterministic), A.padding_mask(mask)


def scale(x, d: int):
    return x / math.sqrt(d) + ops.dynamic_update_slice(x, x[:, :1], (0, 0, 0))


Alias = Block
'''


def transpile_text(text, name="fake", target="torch"):
    source = T.Source(ROOT / "core" / "models" / name / "modeling.py", "models", name)
    target = T.TARGETS[target]
    return T.transpile(source, target, T.Runtime.load(target), ["attention"], text=text)


def test_rewrite_reads_like_the_source():
    generated = transpile_text(SNIPPET)
    head, body = generated.split("\n", 2)[:2], generated.split("\n", 2)[2]
    assert head[0] == "# Generated by `python -m scripts.transpile` from core/models/fake/modeling.py: do not edit."
    assert head[1] == f"# Source sha256: {hashlib.sha256(SNIPPET.encode()).hexdigest()}"
    assert body == EXPECTED


def test_generated_module_runs_and_shows_the_flax_layout():
    namespace = {}
    exec(compile(transpile_text(SNIPPET), "<generated>", "exec"), namespace)
    block = namespace["Block"](4, rate=0.5)
    assert namespace["Alias"] is namespace["Block"]
    assert block.flax_shapes() == {"layers_0/kernel": (4, 4), "layers_0/bias": (4,), "layers_1/kernel": (4, 4),
                                   "layers_1/bias": (4,), "gain": (4,)}
    x = torch.randn(2, 3, 4)
    block.eval()
    out, mask = block(x, torch.ones(2, 3))
    assert torch.equal(out, block(x, torch.ones(2, 3), deterministic=True)[0])
    assert mask.shape == (2, 1, 1, 3)
    block.train()
    assert not torch.equal(out, block(x, torch.ones(2, 3))[0])          # train(): dropout on


def test_tf_rewrite_and_module():
    """The TF target: the same code with `tf.Module` conventions (`__call__` stays, plain lists
    of submodules, `P.variable` for raw params, Flax's deterministic default)."""
    generated = transpile_text(SNIPPET, target="tf")
    assert "from ports.tf.runtime import chex, ops, prims as P" in generated
    assert "self.gain = P.variable(\"gain\", P.ones_init(), (self.features,)," in generated
    assert "def __call__(self, x, mask=None, deterministic: bool = True):" in generated
    assert "self.layers = [P.Dense(" in generated and "torch" not in generated
    import tensorflow as tf
    namespace = {}
    exec(compile(generated, "<generated>", "exec"), namespace)
    block = namespace["Block"](4, rate=0.5)
    assert block.flax_shapes() == {"layers_0/kernel": (4, 4), "layers_0/bias": (4,), "layers_1/kernel": (4, 4),
                                   "layers_1/bias": (4,), "gain": (4,)}
    x = tf.random.normal((2, 3, 4))
    out, mask = block(x, tf.ones((2, 3)))
    assert np.array_equal(out.numpy(), block(x, tf.ones((2, 3)))[0].numpy())       # dropout off by default
    assert not np.array_equal(out.numpy(), block(x, tf.ones((2, 3)), deterministic=False)[0].numpy())
    assert tuple(mask.shape) == (2, 1, 1, 3)


def test_long_constructor_signatures_wrap_under_the_parenthesis():
    fields = "\n".join(f"    field_{i}: int = {i}" for i in range(12))
    text = f"import flax.linen as nn\n\n\nclass Wide(nn.Module):\n{fields}\n\n    def __call__(self, x):\n        return x\n"
    generated = transpile_text(text)
    lines = [line for line in generated.splitlines() if "field_" in line and "self." not in line]
    assert lines[0].startswith("    def __init__(self, field_0: int = 0, ")
    assert all(len(line) <= T.LINE_LENGTH for line in generated.splitlines()[2:])
    assert all(line.startswith(" " * len("    def __init__(")) for line in lines[1:])
    compile(generated, "<generated>", "exec")


# -- check mode on a copy of the tree -----------------------------------------------------------------

@pytest.fixture
def tree_copy(tmp_path):
    """The sources, runtime and generated files, copied: up to date when the tree is (see
    test_check_mode_passes_on_the_tree), and free to break."""
    for name in ("core", "ports", "scripts"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp_path


def test_check_mode_fails_on_edits_stale_and_missing_files(tree_copy):
    generated = tree_copy / "ports" / "torch" / "models" / "bert.py"
    generated.write_text(generated.read_text().replace("ops.tanh", "ops.sin"))
    (tree_copy / "ports" / "torch" / "layers" / "old_layer.py").write_text("x = 1\n")
    (tree_copy / "ports" / "torch" / "layers" / "mlp.py").unlink()
    result = run(["--check"], cwd=tree_copy)
    assert result.returncode == 1
    assert "ports/torch/models/bert.py: differs from its source" in result.stdout
    assert "-        return ops.sin(self.dense(hidden[:, 0]))" in result.stdout
    assert "+        return ops.tanh(self.dense(hidden[:, 0]))" in result.stdout
    assert "ports/torch/layers/old_layer.py: generated file without a canonical source" in result.stdout
    assert "ports/torch/layers/mlp.py: missing" in result.stdout
    repaired = run([], cwd=tree_copy)                                       # regenerating repairs it
    assert repaired.returncode == 0 and "deleted ports/torch/layers/old_layer.py" in repaired.stderr
    assert run(["--check"], cwd=tree_copy).returncode == 0


def test_check_mode_fails_on_a_source_change_and_on_violations(tree_copy):
    source = tree_copy / "core" / "layers" / "mlp.py"
    lines = source.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if "P.act(self.up(x), self.activation)" in line)
    lines[number] = lines[number].replace("P.act(self.up(x), self.activation)", "P.act(self.up(x), self.activation).sum()")
    source.write_text("\n".join(lines) + "\n")
    result = run(["--check"], cwd=tree_copy)
    assert result.returncode == 1
    assert f"core/layers/mlp.py:{number + 1}: array method `.sum()`" in result.stdout
    assert "core/layers/mlp.py" in result.stdout.split("differs")[0] or "FAILED" in result.stderr

    source.write_text(source.read_text().replace(".sum()", "").replace("return self.down(", "return -self.down("))
    result = run(["--check"], cwd=tree_copy)
    assert result.returncode == 1 and "ports/torch/layers/mlp.py: differs from its source" in result.stdout


def test_check_mode_never_swallows_transpiler_exceptions(tree_copy):
    ops = tree_copy / "ports" / "torch" / "runtime" / "ops.py"
    ops.write_text(ops.read_text().replace('"jax.numpy.reshape": "reshape",', '"jax.numpy.reshape": "no_such_op",'))
    result = run(["--check"], cwd=tree_copy)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "JAX_NAMES maps to undefined names ['no_such_op']" in result.stderr
