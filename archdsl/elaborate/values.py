"""Compile-time values the elaborator works with, beside plain ints, floats, strings and lists."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..diagnostics import ArchTypeError, UnknownNameError, did_you_mean
from ..ir import Value
from ..ops import OpDef
from ..ops import lookup as ops_lookup
from ..syntax import ast as A
from ..types import DTYPES, describe

__all__ = ["Tensor", "OpFn", "BlockFn", "LayerFn", "BlockLayer", "Builtin", "Namespace", "Env", "describe",
           "model_called", "module_hint", "module_path"]


@dataclass(frozen=True, slots=True, eq=False)
class Tensor:
    """A tensor value under construction: a handle on an IR value."""

    value: Value

    @property
    def shape(self):
        return self.value.type.shape

    @property
    def type(self):
        return self.value.type

    kind_name = "tensor"


@dataclass(frozen=True, slots=True)
class OpFn:
    op: OpDef
    # the alias written where it checks more than the op (batchnorm2d: 4-D, as torch's class), else "": then
    # batchnorm1d and batchnorm2d are two values (== and imports tell them apart), clip and clamp one
    called: str = ""
    kind_name = "op"

    @property
    def name(self) -> str:
        return self.called or self.op.name

    @property
    def description(self) -> str:  # for describe(): `x -> relu + x` said "got op"
        return f"the op {self.name}"

    def check_rank(self, x, span) -> None:
        """batchnorm2d of a 3-D tensor: torch's BatchNorm2d refuses it, and a spec ported from torch meant
        another layout; the op's own name takes any rank."""
        if not self.called or not isinstance(x, Tensor):
            return
        ranks, torch_name = self.op.alias_ranks[self.called]
        if x.type.rank in ranks:
            return

        def said(rs):
            return " or ".join(f"{r}-D" for r in rs)
        others = ", ".join(f"{a} {said(rs)}" for a, (rs, _) in self.op.alias_ranks.items() if a != self.called)
        raise ArchTypeError(f"{self.called} takes a {said(ranks)} input, as torch's {torch_name}, got {x.type} "
                            f"({x.type.rank}-D); {others}, and {self.op.name} any rank", span)


@dataclass(frozen=True, slots=True, eq=False)
class BlockFn:
    defn: A.BlockDef
    env: "Env"
    kind_name = "block"

    @property
    def description(self) -> str:
        return f"the block {self.defn.name}"


@dataclass(frozen=True, slots=True, eq=False)
class LayerFn:
    """`layer("fc")`: the op layer of that name, callable again on other inputs with the same parameters (a
    torch module called twice)."""
    name: str
    op: OpDef
    attrs: dict
    params: tuple  # the IR values of its parameters, in the op's order
    kind_name = "layer"


@dataclass(frozen=True, slots=True, eq=False)
class BlockLayer:
    """`layer("enc")` of a labelled block call: the block again, on other tensors, with the parameters its first
    call made (a torch module of several layers called twice, ALBERT's shared encoder layer)."""
    name: str
    fn: BlockFn
    args: dict  # the first call's arguments by formal name; tensors are given anew, the rest stay
    automatic: tuple  # the automatic layer names the first call chose, in order: a call again takes the same
    params: tuple = ()  # the names of the parameters and buffers its first call made
    kind_name = "layer"


@dataclass(frozen=True, slots=True)
class Builtin:
    name: str
    fn: object
    doc: str = ""
    kind_name = "builtin function"

    @property
    def description(self) -> str:  # for describe(): which builtin, as "the op relu" says which op
        return f"the builtin {self.name}"


def model_called(written: str, name: str) -> str:
    """A GAN's disc(gen(z)) in a third model: 'did you mean cdist?' said nothing of models."""
    return (f"unknown name '{written}': {name} is a model, and a model is not called from another; put its layers "
            "in a block and call that from each model")


@dataclass(frozen=True, slots=True, eq=False)
class Namespace:
    name: str
    env: "Env"
    models: frozenset = frozenset()  # the imported file's models: `lib.disc(...)` is said to be one
    kind_name = "imported module"


@dataclass(eq=False)
class Env:
    """Names in one scope; lookups fall back to the parent (the file, then builtins)."""

    vars: dict = field(default_factory=dict)
    parent: "Env | None" = None
    imported: dict = field(default_factory=dict)  # a name an import without `as` bound here -> that import's path

    def lookup(self, name: str):
        env = self
        while env is not None:
            if name in env.vars:
                return env.vars[name]
            env = env.parent
        raise KeyError(name)

    def import_of(self, name: str) -> str | None:
        """The path of the import that bound `name` in the scope that has it, or None."""
        env = self
        while env is not None and name not in env.vars:
            env = env.parent
        return env.imported.get(name) if env is not None else None

    def has(self, name: str) -> bool:
        try:
            self.lookup(name)
            return True
        except KeyError:
            return False

    def visible(self) -> set[str]:
        names: set[str] = set()
        env = self
        while env is not None:
            names.update(env.vars)
            env = env.parent
        return names

    def missing(self, name: str, span, extra=(), prefix: str = "") -> UnknownNameError:
        """`prefix` + `name` is unknown (`lib.` + `shufle`, a name looked up in an import's scope); the close
        one is suggested as it would be written, under the same prefix."""
        if name in _PYTHON_LITERALS and not prefix:  # None said "did you mean 'ne'?"
            index = " (and torch's x[:, None] is unsqueeze(x, 1) here: an index adds no dim)" if name == "None" \
                else ""
            return UnknownNameError(f"unknown name '{name}'; the literal is spelled '{name.lower()}'{index}", span)
        if name in ("grad", "gradient", "autograd", "backward", "jacobian", "vjp", "jvp", "hessian") and not prefix:
            return UnknownNameError(f"unknown name '{name}'; a spec computes no gradients itself (no input "
                                    "gradients, no double backward: a WGAN-GP penalty's critic gradient is written "
                                    "out by hand); `archdsl build --train` differentiates the loss", span)
        if name in ("training", "is_training", "eval") and not prefix:  # "did you mean 'range'?"
            return UnknownNameError(f"unknown name '{name}'; a spec has no mode flag: a train step runs dropout and "
                                    "batchnorm in training mode, an inference model in eval mode", span)
        if name in ("inf", "nan") and not prefix:  # -inf said "did you mean 'sin'?"
            return UnknownNameError(f"unknown name '{name}'; " + (
                'infinity is the string "inf" or "-inf" where a fill value is taken, or float("inf")'
                if name == "inf" else 'NaN is float("nan")'), span)
        if name in ("pi", "tau") and not prefix:  # NeRF's positional encoding: math.pi
            value = "3.141592653589793" if name == "pi" else "6.283185307179586"
            return UnknownNameError(f"unknown name '{name}'; the language has no named constants: write the number, "
                                    f"or `let {name} = {value}` at the file's top", span)
        if name in DTYPES and not prefix:  # cast(x, float32): only an input's type is written bare
            return UnknownNameError(f"unknown name '{name}'; a dtype is a string here: write \"{name}\"", span)
        squashed = {_squash(v): v for v in [*self.visible(), *extra]}
        same = squashed.get(_squash(name)) if name != name.lower() and not prefix else None
        torch_name = name if name in _TORCH_FUNCTIONS else None if same else _TORCH_SQUASHED.get(_squash(name))
        if torch_name and not prefix:  # torch's spelling of what the language writes otherwise (Unflatten finds
            # unflatten's); beside it the file's own name it may have meant: its block lstm_cell called as
            # LSTMCell (not an op: Conv is Flax's, not conv), or a typo of its own `sizes`, `views`
            mine = same if same and ops_lookup(same) is None else None
            own = f"; did you mean '{mine}'?" if mine else did_you_mean(name, self.visible())
            torch = f"write {_TORCH_FUNCTIONS[torch_name]}"
            return UnknownNameError(f"unknown name '{name}'" + (f"{own} (for torch's {name}: {torch})" if own
                                                                 else f"; {torch}"), span)
        hint = f"; did you mean '{same}'?" if same else did_you_mean(name, list(self.visible()) + list(extra), prefix)
        return UnknownNameError(f"unknown name '{prefix}{name}'{hint}", span)  # LeakyReLU: leaky_relu


# numpy's, TensorFlow's and JAX's names whose archdsl namesake is torch's, which does another thing; and
# TensorFlow's alone (JAX's and Flax's leaky_relu slope is torch's 0.01)
_NOT_TORCHS = {
    "split": "chunk(x, n, dim) (their split makes n pieces; archdsl's split is torch's: pieces of a given size)",
    "gather": "take(x, index, axis) (their gather is numpy's take; archdsl's gather is torch's, element by element)",
    "transpose": "permute(x, [...]) with the whole order (their transpose's axes=/perm=); transpose(x, a, b) swaps "
                 "two dims",
}
_NOT_TFS = {"leaky_relu": "leaky_relu(x, negative_slope=0.2) (TensorFlow's default slope; archdsl's and torch's "
                          "is 0.01)"}
# numpy's and JAX's reductions, whose defaults differ (max/min reduce; var and std divide by n, ddof=0)
_NOT_NUMPYS = {"max": "amax(x, dim)", "min": "amin(x, dim)",
               **{n: f"{n}(x, dim, correction=0) (their ddof=0 divides by n; archdsl's and torch's default "
                     "correction=1 by n - 1)" for n in ("var", "std")}}
_TORCH_ROOTS = frozenset(("torch", "F", "nn", "functional"))
_TF_ROOTS = frozenset(("tf", "tensorflow", "keras", "K"))
_NUMPY_ROOTS = frozenset(("np", "numpy", "jnp"))
_JAX_NN = frozenset(("jax.nn", "nn", "linen", "flax.linen"))  # nn.gelu is Flax's: torch's nn has no function


def module_hint(root: str, module: str, name: str) -> str:
    """What `module.name` is here: the bare name, unless that name means another thing in torch (tf.split)."""
    if root in _TF_ROOTS and name in _NOT_TFS:
        return f"{module}.{name} is {_NOT_TFS[name]}"
    if root in _NUMPY_ROOTS and name in _NOT_NUMPYS:
        return f"{module}.{name} is {_NOT_NUMPYS[name]}"
    if module in _JAX_NN and name == "gelu":
        return (f'{module}.gelu is gelu(x, approximate="tanh") (JAX\'s default; its approximate=False is '
                "gelu(x))")
    if root not in _TORCH_ROOTS and name in _NOT_TORCHS:
        return f"{module}.{name} is {_NOT_TORCHS[name]}"
    return f"{module}.{name} is {name}"


def _squash(name: str) -> str:
    return name.lower().replace("_", "")


def torch_function_hint(name: str) -> str | None:
    """What the table says to write for torch's function `name` (however cased), for its method form too."""
    key = name if name in _TORCH_FUNCTIONS else _TORCH_SQUASHED.get(_squash(name))
    return _TORCH_FUNCTIONS[key] if key else None


_PYTHON_LITERALS = ("None", "True", "False")
# other libraries' module names, as ported code calls through them (jnp.mean(x), F.relu(x))
MODULES = frozenset(("jnp", "np", "numpy", "torch", "jax", "lax", "optax", "flax", "nn", "F", "tf", "keras",
                     "layers", "linen", "functional", "math", "self", "einops", "linalg"))
# torch functions a model writes otherwise here (close spellings, avg_pool2d and layer_norm, find their op by
# name already)
_TORCH_FUNCTIONS = {
    "view": "reshape(x, [...])", "bmm": "a @ b (or matmul(a, b))", "mm": "a @ b (or matmul(a, b))",
    "addmm": "c + a @ b (gemm(a, b, c=c) for 2-D)", "baddbmm": "c + a @ b",
    "narrow": "a slice: x[:, start:start + length]", "index_select": "take(x, index, axis)",
    "numel": "the product of x.shape", "size": "x.shape", "contiguous": "nothing: drop it",
    "clone": "nothing: drop it (no value is changed in place)", "type_as": "cast(x, y.dtype)",
    "long": 'cast(x, "int64")', "expand_as": "expand(x, shape(y), like=y)", "linalg_norm": "norm(x, p, dim)",
    "quick_gelu": "x * sigmoid(1.702 * x) (CLIP's QuickGELU)",
    "bucketize": "searchsorted(boundaries, x) (torch.bucketize's operands swapped; right= is the same)",
    "identity": "the tensor itself (x), or no step in the chain",
    "rearrange": "reshape(x, [...]) and permute(x, [...]) (einops' pattern written out)",
    "reduce": "mean(x, dim=...), sum or amax (einops' reduction written out)",
    "depth_to_space": "pixel_shuffle(x, r) (torch's order, ONNX DepthToSpace mode CRD: channel c*r*r + i*r + j; "
                      "TensorFlow's, channels last, takes channel (i*r + j)*C + c)",
    "space_to_depth": "pixel_unshuffle(x, r) (torch's order: channel c*r*r + i*r + j; TensorFlow's and ONNX's "
                      "SpaceToDepth give channel (i*r + j)*C + c)",
    "new_zeros": "zeros_like(y) of a tensor of that shape, or tensor([...])",
    **{n: "zeros_like(x) (torch leaves its values unset)" for n in ("empty", "empty_like")},
    "broadcast_to": "expand(x, shape)", "logit": "log(p / (1.0 - p))", "clamp_min": "clamp(x, min=v)",
    "clamp_max": "clamp(x, max=v)", "gelu_new": "gelu(x, approximate=\"tanh\") (Hugging Face's gelu_new)",
    **{n: "le(abs(a - b), atol + rtol * abs(b)) (and amin of it over every element, cast to int64, for allclose)"
       for n in ("isclose", "allclose")},
    "tensordot": "einsum(\"ijk,jkl->il\", [a, b]) (the contracted letters written out)",
    "Bilinear": "einsum(\"bi,oij,bj->bo\", [a, w, b]) with w = parameter([out, in1, in2]), plus a bias",
    "finfo": "the number itself: -3.4028234663852886e38 for float32's lowest (or \"-inf\" where a fill takes it)",
    **{n: "parameter(shape, init=\"trunc_normal\" or \"normal\", std=...) where the weight is made (a layer's "
          "init= where it has one)" for n in ("trunc_normal_", "normal_", "init")},
    **{n: "where(mask, x, 0.0) or masked_fill, keeping the shape (no op's shape depends on the values)"
       for n in ("masked_select", "unique", "nonzero", "argwhere")},
    "UpsamplingBilinear2d": "upsample(x, scale_factor=2, mode=\"bilinear\", align_corners=true)",
    "UpsamplingNearest2d": "upsample(x, scale_factor=2)",
    "rot90": "flip(transpose(x, 2, 3), [2]) for rot90(x, 1, [2, 3])",
    **{n: "drop_path(x, p) (torchvision's StochasticDepth, mode \"row\")"
       for n in ("stochastic_depth", "StochasticDepth")},
    **{f"{kind}Pad{d}d": f"pad(x, [left, right{', top, bottom' if d == 2 else ''}]"
                         f"{', value=v' if kind == 'Constant' else ''}) (torch's order; a negative amount crops)"
       for kind in ("Zero", "Constant") for d in (1, 2)},
    **{f"{kind}Pad{d}d": f"pad(x, [left, right{', top, bottom' if d > 1 else ''}{', front, back' if d > 2 else ''}]"
                         f", mode=\"{mode}\") (torch's order; a conv's own padding_mode=\"{mode}\" pads its input "
                         "so)"
       for kind, mode in (("Reflection", "reflect"), ("Replication", "replicate"), ("Circular", "circular"))
       for d in (1, 2, 3)},
    "logcumsumexp": "log(cumsum(exp(x - m), dim=d)) + m after m0 = amax(x, dim=d, keepdim=true) and m = "
                    "where(isinf(m0), 0.0, m0) (a row of -inf, or one holding inf; an early value more than ~100 "
                    "below the row's largest underflows to -inf in float32)",
    **{n: "argmax(logits - log(-log(rand_like(logits))), dim=-1), the Gumbel-max trick: an index drawn with the "
          "probabilities softmax(logits) (F.gumbel_softmax is softmax((logits - log(-log(rand_like(logits)))) / "
          "tau, dim=-1))" for n in ("multinomial", "gumbel_softmax", "categorical")},
    **{n: "Glow's LU form, W = p @ (tril(l, -1) + eye(n)) @ (triu(u, 1) + where(eye(n, dtype=\"bool\"), "
          "unsqueeze(s, 0), 0.0)) with p a fixed permutation, whose log|det W| is sum(log(abs(s))) (ONNX has no "
          "determinant)" for n in ("det", "slogdet", "logdet")},
    **{n: "the inverse computed outside the model and given as a weight, for an invertible layer's reverse pass "
          "(Glow's sampling): ONNX has no matrix inverse or solve" for n in ("inverse", "inv", "solve",
                                                                             "solve_triangular", "pinv")},
    **{n: "reshape(x, shape(y))" for n in ("view_as", "reshape_as")},
    **{f"upsample_{mode}{d}d": f"upsample(x, scale_factor=s, mode=\"{mode}\") (or size=[...], or like=y for "
                                 "another tensor's size)"
       for mode, ds in (("nearest", (1, 2, 3)), ("linear", (1,)), ("bilinear", (2,)), ("trilinear", (3,)),
                        ("bicubic", (2,))) for d in ds},
    "bincount": "sum(one_hot(ids, n), dim=0) (int64 counts of each id below n)",
    **{n: "whole channels dropped: reshape(drop_path(reshape(x, [-1, h, w]), p), [b, c, h, w]) after b, c, h, w = "
          "shape(x) (drop_path drops whole rows of that [B*C, H, W]; dropout drops single elements)"
       for n in ("dropout2d", "Dropout2d")},
    "bernoulli": 'cast(lt(rand_like(p), p), "float32") (1 with probability p)',
    "kron": "reshape(unsqueeze(unsqueeze(a, 1), 3) * unsqueeze(unsqueeze(b, 0), 2), [m * p, n * q]) of a [m, n] "
            "and a [p, q]",
    "diff": "x[..., 1:] - x[..., :-1] (along the last dim)",
    "diagonal": "flatten(m, -2, -1)[..., ::n + 1] (the diagonal of a square [..., n, n])",
    "cross": "its three components: stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1], ...], dim=-1)",
    "split_with_sizes": "split(x, [sizes], axis)",
    "depthwise_conv2d": "conv2d(c, k, groups=c), c the input's channels, each with its own filter (Keras's "
                        "DepthwiseConv2D; a depth_multiplier m is conv2d(c * m, k, groups=c))",
    "separable_conv2d": "conv2d(c, k, groups=c, bias=false) -> conv2d(out, 1), a depthwise conv then a pointwise "
                        "one (Keras's SeparableConv2D)",
    "group_conv": "conv2d(out, k, groups=g)",
    "normal": "mean + std * randn_like(mean), torch.normal's samples (a weight's init is parameter(shape, "
              'init="normal", std=...))',
    **{n: "-(t - mu) ** 2 / (2.0 * sigma ** 2) - log(sigma) - 0.9189385332046727 for a Normal(mu, sigma)'s "
          "log_prob(t) (0.9189... is log(2 pi) / 2), mu + sigma * randn_like(mu) for its sample"
       for n in ("Normal", "log_prob")},
    "gaussian_nll_loss": "mean(0.5 * (log(v) + (t - mu) ** 2 / v)) with v = clamp(var, min=1e-6) (torch's value at "
                         "its default eps; full=True adds 0.9189385332046727, log(2 pi) / 2)",
    "poisson_nll_loss": "mean(exp(x) - t * x) (torch's default log_input=True; log_input=False is mean(x - t * "
                        "log(x + 1e-8)))",
    "xlogy": "x * log(where(eq(x, 0.0), 1.0, y)) (0 where x is 0, as torch.xlogy, which gives NaN there for a NaN y)",
    "sigmoid_focal_loss": 'a * ce * (1.0 - p_t) ** 2.0 with p = sigmoid(x), ce = bce_with_logits(x, t, reduction='
                          '"none"), p_t = p * t + (1.0 - p) * (1.0 - t), a = 0.25 * t + 0.75 * (1.0 - t) '
                          "(torchvision's, alpha 0.25, gamma 2, reduction none: then mean or sum)",
    "dice_loss": 'mean(1.0 - (2.0 * sum(p * o, dim=[2, 3]) + 1.0) / (sum(p, dim=[2, 3]) + sum(o, dim=[2, 3]) + '
                 '1.0)) with p = softmax(logits, axis=1), o = permute(cast(one_hot(y, C), "float32"), [0, 3, 1, 2]) '
                 "(a soft Dice over [B, C, H, W], averaged over examples and classes: MONAI's DiceLoss(softmax=True, "
                 "to_onehot_y=True, smooth_nr=1.0, smooth_dr=1.0))",
    "layer_scale": 'x * parameter([C], init="constant", value=1e-5) as gamma, a learned scale per channel of a '
                   "residual branch (timm's LayerScale: CaiT's, ConvNeXt's gamma; [C, 1, 1] over [B, C, H, W])",
    **{n: "reshape(transpose(reshape(x, [b, g, c // g, h, w]), 1, 2), [b, c, h, w]) after b, c, h, w = shape(x), "
          "for g groups" for n in ("channel_shuffle", "ChannelShuffle")},
    "zeros": "zeros_like(x) or tensor([...])", "ones": "ones_like(x) or tensor([...])",
    "full": "full_like(x, value) or tensor([...])", "arange": "positions(x, dim) for a tensor, range(n) for numbers",
    "rand": "rand_like(x)", "randn": "randn_like(x)",
    "linspace": "tensor([lo + (hi - lo) * i / (n - 1) for i in range(n)]) (lo, hi and n known when building; "
                "n = 1 is tensor([lo]))",
    **{n: "x @ tensor(cos table) and x @ tensor(sin table), a DFT of n points ([n, n // 2 + 1] tables built with "
          "comprehensions; there is no FFT op)" for n in ("fft", "rfft", "irfft", "stft")},
    "median": "sort(x, dim)[0] and its middle position, [..., (n - 1) // 2] (torch's lower median; a row with a "
              "NaN gives a number there, where torch gives NaN)",
    "kthvalue": "sort(x, dim)[0] and its position k - 1",
    **{n: f"compile-time lists, [i for i in range(n) for j in range({r})] for the rows and the same with j for "
          f"the columns (the strictly {t} triangle, torch's offset {o}), picked with take(flatten(z, 1), "
          "tensor([i * n + j ...]), axis=1) from a [B, n, n] z"
       for n, r, t, o in (("tril_indices", "i", "lower", -1), ("triu_indices", "i + 1, n", "upper", 1))},
    **{n: f"stack([{'amax' if n == 'cummax' else 'amin'}(x[:, :i + 1], dim=1) for i in range(T)], dim=1) at a "
          "fixed length T (values only: no such op)" for n in ("cummax", "cummin")},
    "embedding_bag": "mean(ids -> embedding(n, d), dim=1) (or sum, amax) over bags of one fixed size [B, L]; "
                     "per_sample_weights: multiply before the sum; bags padded with id p (padding_idx=p, left out "
                     "of a mean's count): keep = unsqueeze(ne(ids, p), -1), then sum(where(keep, e, 0.0), dim=1) / "
                     "clamp(sum(cast(keep, \"float32\"), dim=1), min=1.0)",
    "meshgrid": "two positions(x, dim) vectors unsqueezed to broadcast: unsqueeze(py, 1) and unsqueeze(px, 0)",
    **{n: "unsqueeze(a, 1) * unsqueeze(b, 0)" for n in ("outer", "ger")},
    **{n: f"its factors computed outside the model (numpy's linalg.{n}, when making the weights) and given as "
          "weights: ONNX has no matrix decomposition" for n in ("qr", "svd", "eig", "eigh", "cholesky")},
    **{n: "conv(x, g * v / sqrt(sum(v * v, dim=[1, 2], keepdim=true)), ...) in a block, v and g parameters "
          "labelled weight_v and weight_g (dim=[1, 2, 3] for a 2-d conv's weight: the norm per dim 0, a conv's "
          "output channel, a transposed conv's input channel; REFERENCE, Parameters and weight tying)"
       for n in ("weight_norm", "WeightNorm")},
    **{n: "w / sigma as the weight, sigma = sum(u * (w_mat @ v)) after one power-iteration step from stored u, v "
          "buffers (v = normalize(w_mat.T @ u, dim=0), u = normalize(w_mat @ v, dim=0)); a train step does not "
          "update u and v"
       for n in ("spectral_norm", "SpectralNorm")},
    "remove_weight_norm": "nothing: drop it (the weight is g * v / ||v|| as written; build --weights of a checkpoint "
                          "saved after it needs the plain weight's name)",
    **{n: "mean(clamp(-y * (a - b) + margin, min=0.0))" for n in ("margin_ranking_loss", "MarginRankingLoss")},
    **{n: "mean(clamp(norm(a - p + 1e-6, dim=-1) - norm(a - n + 1e-6, dim=-1) + 1.0, min=0.0)) (torch's margin 1.0, "
          "p 2 and eps 1e-6)" for n in ("triplet_margin_loss", "TripletMarginLoss")},
    **{n: "mean(clamp(d(a, p) - d(a, n) + 1.0, min=0.0)) with d your distance (torch's default, pairwise_distance, "
          "is norm(a - b + 1e-6, dim=-1))"
       for n in ("triplet_margin_with_distance_loss", "TripletMarginWithDistanceLoss")},
    **{n: "norm(a - b + 1e-6, dim=-1) (torch's p 2 and eps 1e-6; keepdim=true keeps the dim)"
       for n in ("pairwise_distance", "PairwiseDistance")},
    "pdist": "cdist(x, x), every pair [n, n]; torch's pdist keeps the pairs i < j: take(flatten(d, 0), "
             "tensor([i * n + j for i in range(n) for j in range(i + 1, n)])) at a known n",
    **{n: "mean(where(gt(y, 0.0), x, clamp(1.0 - x, min=0.0))) (torch's margin 1.0; y is 1 or -1)"
       for n in ("hinge_embedding_loss", "HingeEmbeddingLoss")},
    **{n: "mean(softplus(-y * x)), log(1 + exp(-y x)) (y is 1 or -1)" for n in ("soft_margin_loss", "SoftMarginLoss")},
    **{n: "bce_with_logits(x, y) (torch's mean over the classes, then over the batch: the same number)"
       for n in ("multilabel_soft_margin_loss", "MultiLabelSoftMarginLoss")},
    **{n: "mean((sum(clamp(1.0 - xy + x, min=0.0), dim=1) - 1.0) / C) with xy = gather(x, 1, unsqueeze(y, 1)) and C "
          "the classes (torch's margin 1 and p 1; the sum's term of y's own class is the margin, taken off)"
       for n in ("multi_margin_loss", "MultiMarginLoss")},
    **{n: "mean(sum(unsqueeze(m, 2) * unsqueeze(1.0 - m, 1) * clamp(1.0 - unsqueeze(x, 2) + unsqueeze(x, 1), "
          "min=0.0), dim=[1, 2]) / C) with m the targets as a multi-hot float [N, C] (torch's y lists class indices, "
          "ended by -1) and C the classes" for n in ("multilabel_margin_loss", "MultiLabelMarginLoss")},
    **{n: "the real and imaginary parts as two float tensors (there is no complex dtype): exp(a + ib) is exp(a) * "
          "cos(b) and exp(a) * sin(b); a product is re1 * re2 - im1 * im2 and re1 * im2 + im1 * re2"
       for n in ("real", "imag", "complex", "view_as_real", "view_as_complex", "polar", "conj")},
    "angle": "atan2(im, re) of the real and imaginary parts, carried as two float tensors (no complex dtype)",
    **{n: "mean(where(gt(y, 0.0), 1.0 - c, clamp(c - margin, min=0.0))) after c = cosine_similarity(a, b, dim=-1)"
       for n in ("cosine_embedding_loss", "CosineEmbeddingLoss")},
    **{f"scatter_{r}": f'scatter_reduce(out, dim, index, src, "{r if r in ("sum", "mean") else "a" + r}", '
                       "include_self=false), out a tensor of the result's shape (zeros_like or full_like of one; "
                       "torch_scatter's values, not its argmax)" for r in ("max", "min", "mean", "sum")},
    "reversed": "xs[::-1]",
    "lerp": "a + w * (b - a)", "square": "x * x",
    "softmin": "softmax(-x)", "movedim": "permute(x, [...])", "swapaxes": "transpose(x, dim0, dim1)",
    "unflatten": "reshape(x, [...])", "count_nonzero": 'sum(cast(ne(x, 0.0), "int64"))',
    "hstack": "concat(xs, axis=1) (of 1-d tensors: axis=0)", "vstack": "concat(xs, axis=0) (1-d ones: stack)",
    "dstack": "stack(xs, dim=2) (of 2-d tensors; of 3-d ones concat(xs, axis=2))",
    "column_stack": "stack(xs, dim=1) (of 1-d tensors; else concat)",
    "diag_embed": "where(eye(n, dtype=\"bool\"), unsqueeze(v, -2), 0.0) (v's n values on the diagonal of an "
                  "[..., n, n])",
    "diag": "where(eye(n, dtype=\"bool\"), unsqueeze(v, 0), 0.0) for a vector's [n, n]; flatten(m, -2, -1)[..., "
            "::n + 1] for a matrix's diagonal",
    "hypot": "sqrt(a * a + b * b) (in float32 past ~1e19 it overflows, where torch's hypot does not)",
    "addcmul": "x + value * a * b", "addcdiv": "x + value * a / b",
    "nansum": "sum(where(isnan(x), 0.0, x))", "threshold": "where(x > threshold, x, value)",
    "tanhshrink": "x - tanh(x)", "softshrink": "where(abs(x) > lambd, x - sign(x) * lambd, 0.0)",
    "hardshrink": "where(abs(x) > lambd, x, 0.0)",
    **{n: "mean(where(abs(d) < delta, 0.5 * d * d, delta * (abs(d) - 0.5 * delta))) for d = a - b"
       for n in ("huber_loss", "HuberLoss")},
    **{n: "mean(where(abs(d) < beta, 0.5 * d * d / beta, abs(d) - 0.5 * beta)) for d = a - b"
       for n in ("smooth_l1_loss", "SmoothL1Loss")},
    # losses and layers under torch's and Keras's names (each said "did you mean" something unrelated)
    "mse_loss": "mean((a - b) ** 2), or train with --loss mse", "l1_loss": "mean(abs(a - b))",
    "nll_loss": "cross_entropy(logits, labels), which takes the logits (no log_softmax before it)",
    **{n: "bce_with_logits(logits, targets), which takes the logits (no sigmoid before it)"
       for n in ("binary_cross_entropy", "bce_loss", "bce")},
    **{n: "bce_with_logits(logits, targets) (Keras's order is (y_true, y_pred): here the logits come first; its "
          "from_logits=True is what this takes)" for n in ("binary_crossentropy", "BinaryCrossentropy")},
    **{n: "mean((a - b) ** 2), or train with --loss mse" for n in ("mse", "mean_squared_error", "MeanSquaredError")},
    **{n: "mean(abs(a - b))" for n in ("mae", "mean_absolute_error", "MeanAbsoluteError")},
    **{n: "cross_entropy(logits, labels) (the logits first; Keras's from_logits=True is what it takes)"
       for n in ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy",
                 "sparse_softmax_cross_entropy_with_logits")},
    **{n: "mean(-sum(t * log_softmax(x, -1), dim=-1)) for target probabilities t (cross_entropy takes class "
          "labels)" for n in ("categorical_crossentropy", "CategoricalCrossentropy",
                               "softmax_cross_entropy_with_logits")},
    "sigmoid_cross_entropy_with_logits": 'bce_with_logits(logits, labels, reduction="none")',
    **{n: "mean(where(abs(d) < 1.0, 0.5 * d * d, abs(d) - 0.5)) for d = a - b (Keras's delta 1.0)"
       for n in ("Huber", "huber")},
    "log_cosh": "mean(d + softplus(-2.0 * d) - 0.6931471805599453) for d = a - b (log(cosh(d)), stable)",
    "kl_div": "sum(p * (log(where(p > 0.0, p, 1.0)) - log_q)) for target probabilities p and log-probabilities "
              "log_q (0 log 0 counts 0, as torch's xlogy; log(p) made a one-hot target's loss NaN)",
    "Sequential": "a chain, x -> f -> g (a block to reuse one)",
    **{n: "linear(n), the activation chained after it (x -> linear(64) -> relu)" for n in ("Dense", "dense")},
    # Keras's layers: its [B, T, F] sequences and channels-last images are laid out otherwise here
    **{n: f"{'amax' if 'Max' in n or 'max' in n else 'mean'}(x, dim=1) over a [B, T, F] sequence (Keras's "
          f"layout); {'global_maxpool' if 'Max' in n or 'max' in n else 'global_avgpool'} pools the dims after "
          "the channels of [B, C, L]"
       for n in ("GlobalMaxPooling1D", "GlobalAveragePooling1D", "global_max_pooling1d",
                 "global_average_pooling1d", "GlobalMaxPool1D", "GlobalAvgPool1D")},
    **{n: f"{'global_maxpool' if 'Max' in n or 'max' in n else 'global_avgpool'}(x, keepdims=false) over "
          "[B, C, ...] (channels first: permute channels-last images first, permute([0, 3, 1, 2]) for [B, H, W, C])"
       for n in ("GlobalMaxPooling2D", "GlobalAveragePooling2D", "global_max_pooling2d",
                 "global_average_pooling2d", "GlobalMaxPool2D", "GlobalAvgPool2D", "GlobalMaxPooling3D",
                 "GlobalAveragePooling3D", "GlobalMaxPool3D", "GlobalAvgPool3D")},
    "LayerNormalization": "layernorm(x) (over the last dim, as Keras's default axis=-1; eps=1e-3 for Keras's)",
    # Flax's, optax's and jax.numpy's
    "sigmoid_binary_cross_entropy": "bce_with_logits(logits, targets, reduction=\"none\")",
    "softmax_cross_entropy_with_integer_labels": "cross_entropy(logits, labels, reduction=\"none\")",
    "l2_loss": "0.5 * (a - b) ** 2 (optax's: half the squared error)", "squared_error": "(a - b) ** 2",
    "expand_dims": "unsqueeze(x, dim)", "moveaxis": "permute(x, [...])", "take_along_axis": "gather(x, dim, index)",
    "take_along_dim": "gather(x, dim, index) (torch.take_along_dim with a dim)",
    "dot": "a @ b (or matmul(a, b))",
    **{n: "cumprod(x, dim=-1)[..., -1] for a tensor's product along its last dim (exact with zeros and signs); "
          "for a list of numbers a loop, n = n * d for each d" for n in ("prod", "product")},
    "scan": "a loop (for/repeat) over the steps, unrolled; lstm and gru scan themselves",
    **{n: f"{n[:3]}pool1d, {n[:3]}pool2d or {n[:3]}pool3d (by the input's rank; 2d for Flax's images), whose "
          "stride defaults to the kernel (Flax's to 1: give stride= as Flax's strides)"
       for n in ("max_pool", "avg_pool")},
    "Conv": "conv2d(out_channels, kernel_size) (conv1d, conv3d by the input's rank), channels first",
    "Embed": "embedding(num_embeddings, embedding_dim)",
    **{n: "multihead_attention(x, embed_dim=..., num_heads=...) over [batch, length, features] (with its "
          "projections; scaled_dot_product_attention has none)"
       for n in ("SelfAttention", "MultiHeadDotProductAttention", "MultiHeadAttention")},
    "dot_product_attention": "scaled_dot_product_attention(q, k, v) over [batch, heads, length, head size] "
                             "(torch's; Flax's [batch, length, heads, head size] is transpose(q, 1, 2) first)",
    **{n: "lstm(x, hidden) or gru(x, hidden) over the whole sequence; to step by hand (a decoder's cell), the "
          "layer over a sequence of one step ([B, 1, F]) with h0= (and c0=) of [1, B, H] and return_state=true, "
          "called again with layer(\"name\") at the next step (torch's cell's weight_ih is its weight_ih_l0)"
       for n in ("GRUCell", "LSTMCell", "OptimizedLSTMCell", "RNN", "gru_cell", "lstm_cell")},
    "make_causal_mask": "causal=true (multihead_attention, scaled_dot_product_attention), or causal_mask(scores)",
    "make_attention_mask": "key_padding_mask= (true for a key to ignore: torch's; Flax's masks are true to attend)",
    "Masking": "lstm(x, hidden, lengths=n) (each example's count of real steps, the padding after them)",
    "Lambda": "the expression itself, in the chain or an assignment (y = x * 2.0)",
    **{n: f"{'max' if 'Max' in n else 'avg'}pool{n[-2]}d(x, kernel_size) over channels-first input"
       for n in ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
                 "AveragePooling3D", "MaxPool2D", "AvgPool2D")},
    "Concatenate": "concat([a, b], axis=-1) (Keras's default; concat's own is axis=1, the channels)",
    "concatenate": "concat([a, b], axis=0) (numpy's, jax's and torch's default axis; concat's own is axis=1)",
    "Dot": "sum(a * b, dim=-1, keepdim=true) for Keras's Dot(axes=1) of two [B, D]",
    "UpSampling2D": "upsample(x, scale_factor=2) (Keras's size=2 is a factor; upsample's size= is the output's size)",
    "LeakyReLU": "leaky_relu(x) (torch's nn.LeakyReLU, slope 0.01); Keras's LeakyReLU() is leaky_relu(x, "
                 "negative_slope=0.3)",
    "ReLU": "relu(x), or relu6(x) for Keras's ReLU(max_value=6.0)",
    "TimeDistributed": "the layer itself: linear(n) acts on the last dim of a [B, T, F] sequence",
    "RepeatVector": "tile(unsqueeze(v, 1), [1, n, 1]) (a [B, D] as [B, n, D])",
    "ZeroPadding2D": "pad(x, [left, right, top, bottom]) on channels-first [B, C, H, W] (the last dim's pair first)",
    "Cropping2D": "pad(x, [-left, -right, -top, -bottom]) on channels-first [B, C, H, W] (a negative pad crops)",
    **{n: f"dropout(x, p) for an element-wise mask; Keras's whole channels of a channels-first {shape} are "
          f"x * cast(gt(rand_like(x[{cut}]), p), \"float32\") / (1.0 - p) (drawn at inference too)"
       for n, shape, cut in (("SpatialDropout1D", "[B, C, T]", ":, :, :1"),
                             ("SpatialDropout2D", "[B, C, H, W]", ":, :, :1, :1"))},
    "GaussianNoise": "x + stddev * randn_like(x) (it runs in inference too: a train-only noise is given as an input)",
    "Rescaling": "x * scale + offset",
    "Permute": "permute(x, [0, ...]) with the batch dim written and dims counted from 0 (Keras's Permute((2, 1)) is "
               "permute(x, [0, 2, 1]))",
    "Reshape": "reshape(x, [-1, ...]) with the batch dim written (Keras's Reshape((5, 64)) is reshape(x, [-1, 5, 64]))",
    "clip_by_value": "clamp(x, min=lo, max=hi)",
    "attend": 'h @ ref("embed.weight").T (Flax\'s embed.attend(h): the embedding table as the output layer)',
    "GroupNormalization": "group_norm(x, num_groups) on channels-first [B, C, ...] (Keras's groups=32 default)",
    "Normalization": "(x - mean) / sqrt(var) with the dataset's mean and variance as buffers or constants "
                     "(Keras's adapted feature standardization; normalize is an L2 norm)",
    **{n: "a * b (Keras's merge layer of a list: a * b * c for more)" for n in ("Multiply", "multiply")},
    "Add": "a + b (Keras's merge layer of a list: a + b + c for more)",
    **{f"reduce_{n}": f"{op}(x, dim=d) for TensorFlow's axis=d (a list for several; keepdims=True is "
                      "keepdim=true)"
       for n, op in (("mean", "mean"), ("sum", "sum"), ("max", "amax"), ("min", "amin"))},
    **{f"reduce_{n}": f"{op}(x, dim=d, correction=0) for TensorFlow's axis=d (its {op} divides by n: the "
                      "population figure; archdsl's and torch's default correction=1 divides by n - 1)"
       for n, op in (("std", "std"), ("variance", "var"))},
    "BatchNormalization": "batchnorm(x, eps=1e-3, momentum=0.01): Keras's momentum=0.99 keeps 0.99 of the "
                          "running statistics, torch's and archdsl's momentum is the new batch's share",
    "Activation": "the activation itself, chained (x -> relu)",
    **{n: "lstm(x, hidden, bidirectional=true) (or gru)" for n in ("Bidirectional", "bidirectional")},
    "Flatten": "flatten(x)", "Dropout": "dropout(x, p)", "Embedding": "embedding(num_embeddings, embedding_dim)",
    "LSTM": "lstm(hidden_size): every step's output [B, T, H]; out[:, -1] the last", "GRU": "gru(hidden_size)",
    **{n: "lstm(x, hidden) or gru(x, hidden); torch's plain RNN (no op here) is a loop at a fixed length: h = "
          "tanh((x[:, 0] -> linear(H) as ih) + (h0 -> linear(H) as hh)), then for t in range(1, T): h = "
          "tanh((x[:, t] -> layer(\"ih\")) + (h -> layer(\"hh\"))), its weights torch's weight_ih_l0 and "
          "weight_hh_l0" for n in ("rnn", "SimpleRNN", "RNN", "RNNCell", "rnn_cell")},
    **{n: "no transducer loss op: its alpha recursion written out, logaddexp over a T x U grid of sizes known when "
          "building (loops unroll then); ctc_loss is another loss" for n in ("rnnt_loss", "RNNTLoss",
                                                                          "transducer_loss")},
    **{n: f"{n}1d, {n}2d or {n}3d (by the input's rank)" for n in ("maxpool", "avgpool")},
}
# the table's names however cased or underscored (Unflatten, torch's module, for unflatten); not a Keras class
# named as an op (Permute, Reshape: x.permute(...) is torch's method, not Keras's 1-based layer)
_TORCH_SQUASHED = {_squash(k): k for k in reversed(_TORCH_FUNCTIONS)
                   if k == _squash(k) or ops_lookup(_squash(k)) is None}


def module_path(e) -> str | None:
    """'torch.nn.functional' for torch.nn.functional.relu's object: a dotted path from another library's module."""
    parts = []
    while isinstance(e, A.Attr):
        parts.append(e.name)
        e = e.value
    if not isinstance(e, A.Name) or e.id not in MODULES:
        return None
    return ".".join([e.id, *reversed(parts)])
