"""Small network problems with known saddles and plateaus (``NETWORKS.md``), CPU-cheap.

A :class:`NetworkProblem` holds an ``nn.Module`` and its data, both built in code from a seed, and
evaluates the loss functionally, L(θ; batch) = ``criterion(functional_call(model, θ, x), y)``, so a
parameter dict θ can be evaluated anywhere (dimer ends, slice grids) and ``torch.func.grad``,
``vmap`` and ``hessian`` work on it. Full batch by default (deterministic); with ``batch_size`` the
batch of step t is drawn from a generator seeded by (data_seed, t), the same for every optimizer.

- ``deep_linear``: W_L⋯W₁ on X = I, target U diag(3, 2, 1) Vᵀ, ½‖·‖²_F; plateau ½Σs² = 7.
- ``xor``: 2-2-1 tanh on {±1}², target −x₁x₂, ½ MSE; plateau 0.5 (a degenerate origin).
- ``two_moons``: 2-H-1 tanh on standardised make_moons (n 200), ½ MSE; plateau 0.5 (a strict saddle).
- ``teacher_student``: soft committee, 4 tanh units on N = 100, P = 4000, ½ MSE; plateau ≈ 0.0504.
- ``spirals``: 2-H-K tanh on K spirals, softmax cross-entropy; plateau ln K.
- ``tiny_transformer``: 1-layer GPT on neighbour sums mod 3 of 8 tokens (128 sequences); plateau ln 3.

"½ MSE" is ½·mean((f − y)²), so the plateau at f ≡ 0 with targets ±1 is 0.5. The init scale σ
multiplies N(0, 1) weights; biases start at 0 (the origin of the small-init saddle), except for
``xor`` (all parameters) and ``tiny_transformer`` (nanoGPT's init).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn import functional as F

from landscapes.nets import data as datasets
from landscapes.nets.models import DeepLinear, SoftCommittee, TanhMLP
from landscapes.nets.sequences import TASKS, sequence_task

Init = Callable[[str, tuple[int, ...], float, torch.Generator], Tensor]
Batch = tuple[Tensor, Tensor]


def gaussian_weights(name: str, shape: tuple[int, ...], scale: float, generator: torch.Generator) -> Tensor:
    """σ·N(0, 1) for weights, 0 for biases (names ending in ``bias``)."""
    if name.endswith("bias"):
        return torch.zeros(shape, dtype=torch.float64)
    return scale * torch.randn(shape, generator=generator, dtype=torch.float64)


def gaussian_all(name: str, shape: tuple[int, ...], scale: float, generator: torch.Generator) -> Tensor:
    """σ·N(0, 1) for every parameter, biases included."""
    return scale * torch.randn(shape, generator=generator, dtype=torch.float64)


def half_mse(output: Tensor, target: Tensor) -> Tensor:
    """½·mean((f − y)²) over the batch."""
    return 0.5 * ((output - target) ** 2).mean()


def half_sse(output: Tensor, target: Tensor) -> Tensor:
    """½·Σ(f − y)² over the batch and the outputs (½‖W_L⋯W₁ − T‖²_F on X = I)."""
    return 0.5 * ((output - target) ** 2).sum()


class NetworkProblem:
    """One small network problem: a module, its data, an init rule and the known plateau.

    Attributes: ``key``, ``label``, ``note``, ``plateau`` (loss on the plateau, or None),
    ``escape_loss`` (the loss below which a run has left the plateau), ``n_params`` d,
    ``default_init_scale`` σ, ``data_seed``, ``batch_size`` (None = full batch), ``dtype``,
    ``options`` (the factory's arguments, for cache keys), ``info`` (problem-specific extras),
    ``model`` and ``data`` = (inputs, targets).
    """

    def __init__(
        self,
        *,
        key: str,
        label: str,
        model: nn.Module,
        data: Batch,
        criterion: Callable[[Tensor, Tensor], Tensor] | None,
        default_init_scale: float,
        plateau: float | None,
        escape_loss: float | None,
        note: str,
        data_seed: int,
        options: dict,
        init: Init = gaussian_weights,
        batch_size: int | None = None,
        dtype: torch.dtype = torch.float64,
        info: dict | None = None,
    ) -> None:
        n_samples = data[0].shape[0]
        if batch_size is not None and not 1 <= batch_size <= n_samples:
            raise ValueError(f"batch_size must be None (full batch) or in 1..{n_samples}, got {batch_size}")
        self.key, self.label, self.note = key, label, note
        self.model = model.to(dtype)
        self.data = tuple(t.to(dtype) if t.is_floating_point() else t for t in data)
        self.criterion = criterion
        self.default_init_scale = default_init_scale
        self.plateau, self.escape_loss = plateau, escape_loss
        self.data_seed, self.batch_size, self.dtype = data_seed, batch_size, dtype
        self.options = options
        self.info = info or {}
        self._init = init
        self.shapes = {name: tuple(p.shape) for name, p in self.model.named_parameters()}
        self.n_params = sum(math.prod(s) for s in self.shapes.values())

    def params0(self, init_scale: float | None = None, seed: int = 0) -> dict[str, Tensor]:
        """Initial parameters {name: Tensor} with init scale σ (default ``default_init_scale``)."""
        scale = self.default_init_scale if init_scale is None else float(init_scale)
        if not scale >= 0:
            raise ValueError(f"init_scale must be >= 0, got {init_scale}")
        g = torch.Generator().manual_seed(seed)
        return {name: self._init(name, shape, scale, g).to(self.dtype) for name, shape in self.shapes.items()}

    def loss(self, params: dict[str, Tensor], batch: Batch) -> Tensor:
        """Scalar loss L(θ; batch), functional in θ (works under ``torch.func`` transforms)."""
        inputs, targets = batch
        if self.criterion is None:  # the module computes its own loss from (inputs, targets)
            return functional_call(self.model, params, (inputs, targets))
        return self.criterion(functional_call(self.model, params, (inputs,)), targets)

    def module_loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """The loss of ``model`` — a copy of :attr:`model` holding other parameter values — on
        ``batch``: :meth:`loss` without ``functional_call``'s swap of the parameters at every call
        (0.3 ms of tiny_transformer's 1.8 ms forward), for loops over many parameter points."""
        inputs, targets = batch
        if self.criterion is None:
            return model(inputs, targets)
        return self.criterion(model(inputs), targets)

    def batch(self, step: int) -> Batch:
        """The batch of step ``step``: the full data set, or ``batch_size`` samples drawn without
        replacement from a generator seeded by (data_seed, step) — a pure function of the step."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self.batch_size is None:
            return self.data
        state = np.random.SeedSequence([self.data_seed, step]).generate_state(2, dtype=np.uint32)
        g = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        index = torch.randperm(self.data[0].shape[0], generator=g)[: self.batch_size]
        return tuple(t[index] for t in self.data)

    def flatten(self, params: dict[str, Tensor]) -> Tensor:
        """θ as one vector (d,), in the order of ``shapes``."""
        return torch.cat([params[name].reshape(-1) for name in self.shapes])

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """The inverse of :meth:`flatten`: (d,) -> {name: view of θ}."""
        if theta.shape != (self.n_params,):
            raise ValueError(f"theta must have shape ({self.n_params},), got {tuple(theta.shape)}")
        sizes = [math.prod(s) for s in self.shapes.values()]
        pieces = torch.split(theta, sizes)
        return {name: piece.reshape(shape) for (name, shape), piece in zip(self.shapes.items(), pieces)}

    def flat_loss(self, theta: Tensor, batch: Batch) -> Tensor:
        """L(θ; batch) with θ flat (d,): the form ``torch.func.hessian`` and ``vmap`` take."""
        return self.loss(self.unflatten(theta), batch)

    def __repr__(self) -> str:
        return f"NetworkProblem({self.key!r}, n_params={self.n_params}, options={self.options})"


# ---------------------------------------------------------------------------------------------
# the problems


def deep_linear(
    n_layers: int = 2,
    dim: int = 6,
    singular_values: tuple[float, ...] = (3.0, 2.0, 1.0),
    data_seed: int = 0,
    batch_size: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> NetworkProblem:
    """Saxe et al. (2014): L = ½‖W_L⋯W₁ − U diag(s) Vᵀ‖²_F, init σ = 1e-3.

    Plateau ½Σs²; each mode α is learned in a sigmoidal drop, strongest first. ``escape_loss`` is the
    loss when the strongest mode s₁ has reached half strength (the others still 0):
    ½Σs² − ⅜s₁². ``info``: U, V (d, d) and s, so mode α's strength is uₐᵀ W_L⋯W₁ vₐ. GD η = 0.01
    from σ = 1e-3 (data and init seed 0): half strength at steps 230 / 337 / 643 (anchors 245 / 344 / 673).
    """
    if n_layers < 2:
        raise ValueError(f"n_layers must be >= 2 (a deep linear network), got {n_layers}")
    X, Y, U, V = datasets.deep_linear_data(tuple(singular_values), dim, data_seed)
    s = sorted((float(v) for v in singular_values), reverse=True)
    plateau = 0.5 * sum(v * v for v in s)
    return NetworkProblem(
        key="deep_linear",
        label=f"Deep linear ({n_layers} layers, d = {dim})",
        model=DeepLinear(dim, n_layers),
        data=(X, Y),
        criterion=half_sse,
        default_init_scale=1e-3,
        plateau=plateau,
        escape_loss=plateau - 0.375 * s[0] ** 2,
        note=(
            f"Saxe et al. 2014: whitened inputs, target U diag{tuple(s)} Vᵀ; plateau {plateau:g}, then one "
            "sigmoidal drop per mode, strongest first (GD η 0.01, σ 1e-3: half strength ≈ 245 / 344 / 673)"
        ),
        data_seed=data_seed,
        options=dict(n_layers=n_layers, dim=dim, singular_values=tuple(s), data_seed=data_seed),
        batch_size=batch_size,
        dtype=dtype,
        info={"U": U.to(dtype), "V": V.to(dtype), "singular_values": tuple(s)},
    )


def xor(batch_size: int | None = None, dtype: torch.dtype = torch.float64) -> NetworkProblem:
    """2-2-1 tanh network on XOR (targets −x₁x₂), ½ MSE; the origin is a degenerate stationary point
    (Hessian eigenvalues {0 ×8, 1}). Init σ = 0.1 on every parameter, biases included (with zero
    biases the network starts odd, f(−x) = −f(x), while the target is even, and some runs stall);
    left the plateau when ½ MSE < 0.05. GD lr 0.1, median over init seeds 0–9: σ = 0.5 → 212 steps
    (anchor 200), σ = 0.1 → 878 (anchor 1 050; the seeds spread over 408–2 293)."""
    return NetworkProblem(
        key="xor",
        label="XOR (2-2-1 tanh)",
        model=TanhMLP(2, 2, 1),
        data=datasets.xor_data(),
        criterion=half_mse,
        default_init_scale=0.1,
        plateau=0.5,
        escape_loss=0.05,
        note=(
            "The origin is a degenerate stationary point (Hessian eigenvalues {0 ×8, 1}): no negative "
            "curvature for a dimer to find; GD (lr 0.1) plateau length grows like σ^-1.8"
        ),
        data_seed=0,
        options={},
        init=gaussian_all,
        batch_size=batch_size,
        dtype=dtype,
    )


def two_moons(
    hidden: int = 4,
    n_samples: int = 200,
    noise: float = 0.1,
    data_seed: int = 0,
    batch_size: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> NetworkProblem:
    """2-H-1 tanh network on standardised two moons, targets ±1, ½ MSE, init σ = 1e-2.

    The origin is a strict saddle: its Hessian couples each output weight vₕ with its unit's input
    weights and bias with −mean(y·(x, 1)), giving λ = ±‖mean(y·x)‖ ≈ ∓0.945 once per hidden unit.
    GD (lr 0.1) leaves the plateau (MSE < 0.25) after ≈ 22 / 48 / 73 / 99 steps for σ = 1e-1 … 1e-4.
    Measured with data seed 0 (λ_min = −0.954): medians over init seeds 0–4 of 26 / 50 / 75 / 101
    steps; at σ = 1e-1 the seeds spread over 22–29 (the start is outside the linear regime).
    """
    if hidden < 1:
        raise ValueError(f"hidden must be >= 1, got {hidden}")
    return NetworkProblem(
        key="two_moons",
        label=f"Two moons (2-{hidden}-1 tanh)",
        model=TanhMLP(2, hidden, 1),
        data=datasets.two_moons_data(n_samples, noise, data_seed),
        criterion=half_mse,
        default_init_scale=1e-2,
        plateau=0.5,
        escape_loss=0.25,
        note=(
            "The origin is a strict saddle, λ_min ≈ −0.945 (once per hidden unit); GD lr 0.1 needs "
            "≈ 25.5 more steps per decade of smaller init = ln 10 / ln(1 + 0.1·0.945)"
        ),
        data_seed=data_seed,
        options=dict(hidden=hidden, n_samples=n_samples, noise=noise, data_seed=data_seed),
        batch_size=batch_size,
        dtype=dtype,
    )


def teacher_student(
    n_inputs: int = 100,
    n_units: int = 4,
    n_samples: int = 4000,
    data_seed: int = 0,
    batch_size: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> NetworkProblem:
    """Soft committee machine (Saad & Solla 1995): a student of K tanh units learns a teacher of K
    orthogonal units from P Gaussian inputs, ½ MSE, init σ = 1e-3.

    From small init the student units become identical (the symmetric plateau, L ≈ 0.05) and stay so
    until the symmetry breaks along a direction of negative curvature (left the plateau: L < 0.04).

    Time scale: with this normalisation (pre-activations w·x/√N, w ~ σ N(0, 1)) the Hessian at the
    plateau has λ_min ≈ −1.1e-3 (data seed 0, L = 0.0494), so GD lr 0.5 needs ≈ 300 steps to reach
    the plateau and ≈ 4 200 steps per decade of σ to leave it — 10× slower than the lr-0.5 anchors of
    ``NETWORKS.md``. GD lr 5 matches their shape: plateau by step ≈ 25, ≈ +440 steps per decade,
    leaving after ≈ 830 / 1 240 / 1 700 / 2 150 steps for σ = 1e-1 … 1e-4 (anchors 650 / 1 050 /
    1 450 / 1 850).
    """
    return NetworkProblem(
        key="teacher_student",
        label=f"Teacher–student ({n_units} tanh units, N = {n_inputs})",
        model=SoftCommittee(n_inputs, n_units),
        data=datasets.teacher_student_data(n_inputs, n_units, n_samples, data_seed),
        criterion=half_mse,
        default_init_scale=1e-3,
        plateau=0.0504,
        escape_loss=0.04,
        note=(
            "Symmetric plateau (all student units alike) at L ≈ 0.05, left along a direction of small "
            "negative curvature; plateau length grows linearly in ln(1/σ)"
        ),
        data_seed=data_seed,
        options=dict(n_inputs=n_inputs, n_units=n_units, n_samples=n_samples, data_seed=data_seed),
        batch_size=batch_size,
        dtype=dtype,
    )


def spirals(
    n_classes: int = 3,
    hidden: int = 100,
    n_per_class: int = 100,
    data_seed: int = 0,
    batch_size: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> NetworkProblem:
    """2-H-K tanh network on K interleaved spirals, softmax cross-entropy, init σ = 1e-2.

    From small init the logits are ≈ 0, so the loss starts on the plateau ln K; left it when L < ½ ln K.
    """
    if hidden < 1 or n_classes < 2:
        raise ValueError(f"need hidden >= 1 and n_classes >= 2, got hidden={hidden}, n_classes={n_classes}")
    plateau = math.log(n_classes)
    return NetworkProblem(
        key="spirals",
        label=f"Spirals ({n_classes} classes, 2-{hidden}-{n_classes} tanh)",
        model=TanhMLP(2, hidden, n_classes),
        data=datasets.spirals_data(n_classes, n_per_class, data_seed),
        criterion=F.cross_entropy,
        default_init_scale=1e-2,
        plateau=plateau,
        escape_loss=0.5 * plateau,
        note="Plateau at ln K from small init; needs capacity. A contrast case, not a pure saddle",
        data_seed=data_seed,
        options=dict(n_classes=n_classes, hidden=hidden, n_per_class=n_per_class, data_seed=data_seed),
        batch_size=batch_size,
        dtype=dtype,
    )


def _gpt_init(n_layer: int) -> Init:
    """nanoGPT's init: N(0, σ²) weights, N(0, σ²/(2·n_layer)) residual projections, layer norms 1."""

    def init(name: str, shape: tuple[int, ...], scale: float, generator: torch.Generator) -> Tensor:
        if ".ln_" in name or name.startswith("ln_"):
            return torch.ones(shape, dtype=torch.float64)
        residual = name.endswith("c_proj.weight") or name.endswith("mlp.2.weight")
        std = scale / math.sqrt(2 * n_layer) if residual else scale
        return std * torch.randn(shape, generator=generator, dtype=torch.float64)

    return init


def tiny_transformer(
    task: str = "neighbour_sum",
    vocab: int = 3,
    length: int = 8,
    n_sequences: int = 128,
    n_layer: int = 1,
    n_head: int = 2,
    n_embd: int = 32,
    data_seed: int = 0,
    batch_size: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> NetworkProblem:
    """A 1-layer nanoGPT on an algorithmic sequence task (``landscapes.nets.sequences``), init σ = 0.02.

    Default: neighbour sums mod 3 of 8 random tokens, 128 sequences, full batch: 12 992 parameters,
    ≈ 12 ms of CPU per Adam step (one thread). The answer loss starts at ≈ ln(p + 1) (uniform over
    the symbols and SEP), falls to the plateau ln p (a uniform guess of the answer) and sits there
    until attention learns to fetch both neighbours, then drops. Left the plateau when L < ½ ln p.

    Measured (full-batch Adam lr 3e-3, init seeds 0–4): on the plateau (L < ln 3 + 0.01) from step
    21–22, leaves it (L < ln 3 − 0.05) at steps 121 / 122 / 125 / 135 / 133, and L < ½ ln 3 at
    373 / 278 / 199 / 197 / 210: a plateau of ≈ 100–115 steps.
    With 256 sequences (seeds 0–4) the plateau ends at 75–246 and ½ ln 3 is reached at 185–455; with
    64 it lasts only ≈ 15 steps. ``copy``, ``reverse`` and ``sort`` (tried with 10 symbols, 6–8
    tokens) show no clear plateau: their loss falls from the first steps.
    """
    from landscapes.shakespeare import GPT  # one nanoGPT in the repository

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; allowed: {list(TASKS)}")
    inputs, targets = sequence_task(task, n_sequences, length, vocab, data_seed)
    plateau = math.log(vocab)
    model = GPT(vocab + 1, inputs.shape[1], n_layer, n_head, n_embd, dropout=0.0)
    return NetworkProblem(
        key="tiny_transformer",
        label=f"Tiny Transformer ({task}, {n_layer} layer{'s' * (n_layer > 1)})",
        model=model,
        data=(inputs, targets),
        criterion=None,
        default_init_scale=0.02,
        plateau=plateau,
        escape_loss=0.5 * plateau,
        note=(
            f"{task} of {length} tokens over {vocab} symbols; answer loss plateaus at ln {vocab} = "
            f"{plateau:.3f}, then drops abruptly once attention fetches the right tokens"
        ),
        data_seed=data_seed,
        options=dict(
            task=task, vocab=vocab, length=length, n_sequences=n_sequences, n_layer=n_layer,
            n_head=n_head, n_embd=n_embd, data_seed=data_seed,
        ),
        init=_gpt_init(n_layer),
        batch_size=batch_size,
        dtype=dtype,
    )


NETWORKS: dict[str, Callable[..., NetworkProblem]] = {
    "deep_linear": deep_linear,
    "xor": xor,
    "two_moons": two_moons,
    "teacher_student": teacher_student,
    "spirals": spirals,
    "tiny_transformer": tiny_transformer,
}


def make_network(key: str, **options) -> NetworkProblem:
    """Build the problem ``key`` of :data:`NETWORKS` with the factory's keyword ``options``."""
    if key not in NETWORKS:
        raise ValueError(f"unknown network {key!r}; allowed: {sorted(NETWORKS)}")
    factory = NETWORKS[key]
    allowed = list(inspect.signature(factory).parameters)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {key!r}; allowed: {allowed}")
    return factory(**options)
