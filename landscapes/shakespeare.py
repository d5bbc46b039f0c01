"""The paper's own problem: a character-level GPT on tiny Shakespeare (nanoGPT's ``shakespeare_char``).

Data: the characters of the text, a vocabulary of its distinct characters (65 for the full
1 115 394-character corpus), the first 90 % for training and the rest for validation. A batch is
``batch_size`` windows of ``block_size`` characters ``x`` (B, T) with next-character targets
``y`` (B, T), drawn at random offsets exactly like nanoGPT's ``get_batch``; the offsets of step t
come from a generator seeded by ``(seed, t)``, so every optimizer sees the same batch at step t.

Model: nanoGPT's GPT (pre-norm blocks, causal self-attention, GELU MLP with 4·n_embd hidden units,
tied input/output embedding, no biases, init N(0, 0.02²) and N(0, 0.02²/(2·n_layer)) on the
residual projections). With 4 layers, 4 heads, n_embd 128, block 64 and 65 characters it has
804 096 parameters; nanoGPT reports 0.80M because it leaves out the 8 192 position embeddings.

Loss: mean cross-entropy in nats, evaluated functionally with ``torch.func.functional_call`` so a
parameter dict θ can be evaluated at shifted points (the dimer ends) without touching the module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn import functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
TRAIN_FRACTION = 0.9
_STREAMS = {"batch": 0, "train": 1, "val": 2}


class CorpusNotFoundError(FileNotFoundError):
    """The tiny Shakespeare text was not found where it was looked for."""


class _SelfAttention(nn.Module):
    """Causal self-attention written out (softmax(QKᵀ/√h + mask)·V), not fused: the fused CPU kernel has
    no forward-mode AD, and exact Hessian-vector products (Lanczos ground truth) need it."""

    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=False)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        mask = torch.ones(block_size, block_size, dtype=torch.bool).tril()
        self.register_buffer("causal", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
        att = att.masked_fill(~self.causal[:T, :T], float("-inf")).softmax(dim=-1)
        y = self.attn_dropout(att) @ v
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class _Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=False)
        self.attn = _SelfAttention(n_embd, n_head, block_size, dropout)
        self.ln_2 = nn.LayerNorm(n_embd, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd, bias=False),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd, bias=False),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT's GPT without biases: ``forward(x (B, T) int64, y (B, T) int64) -> mean CE loss``."""

    def __init__(
        self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int, dropout: float
    ) -> None:
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(n_embd, n_head, block_size, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        T = x.shape[1]
        h = self.drop(self.wte(x) + self.wpe(torch.arange(T, device=x.device)))
        for block in self.blocks:
            h = block(h)
        logits = self.ln_f(h) @ self.wte.weight.T  # tied output embedding, (B, T, vocab)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def _generator(seed: int, stream: str, index: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, _STREAMS[stream], index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class ShakespeareProblem:
    """The paper's char-level GPT as a NetworkProblem (see ``docs/API.md``).

    ``params0(init_scale, seed) -> {name: Tensor}``; ``loss(params, (x, y)) -> scalar``;
    ``batch(step) -> (x, y)`` the training batch of step ``step`` (same for every optimizer);
    ``eval_batches(split, n)`` n fixed batches of ``"train"`` or ``"val"``;
    ``evaluate(params, split, n)`` the mean loss over them (no gradient, dropout off).
    """

    key = "shakespeare_char"
    label = "Tiny Shakespeare, char-level GPT"
    plateau = None

    def __init__(
        self,
        text: str,
        block_size: int,
        batch_size: int,
        n_layer: int,
        n_head: int,
        n_embd: int,
        dropout: float,
        seed: int,
        device: str,
    ) -> None:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        present = np.bincount(codes) > 0
        points = np.flatnonzero(present)  # code points ascending: the order of sorted(set(text))
        ids = (np.cumsum(present) - 1)[codes]
        self.vocab = "".join(map(chr, points))
        self.vocab_size = len(points)
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device)
        data = torch.from_numpy(ids.astype(np.int64))
        n_train = int(TRAIN_FRACTION * len(data))
        self.splits = {"train": data[:n_train], "val": data[n_train:]}
        for split, part in self.splits.items():
            if len(part) <= block_size + 1:
                raise ValueError(
                    f"the {split} split has {len(part)} characters; it needs more than "
                    f"block_size + 1 = {block_size + 1} (use a longer text or a smaller block_size)"
                )
        self.model = GPT(self.vocab_size, block_size, n_layer, n_head, n_embd, dropout).to(self.device)
        self.n_layer = n_layer
        self.n_params = sum(p.numel() for p in self.model.parameters())
        n_non_embedding = self.n_params - self.model.wpe.weight.numel()
        self.note = (
            f"GPT {n_layer} layers, {n_head} heads, n_embd {n_embd}, block {block_size}, batch {batch_size}, "
            f"dropout {dropout}: {self.n_params:,} parameters ({n_non_embedding / 1e6:.2f}M without "
            f"position embeddings, nanoGPT's count); vocab {self.vocab_size}, "
            f"{len(self.splits['train']):,} train / {len(self.splits['val']):,} val characters"
        )

    def params0(self, init_scale: float | None = None, seed: int = 0) -> dict[str, Tensor]:
        """Fresh parameters: linear and embedding weights ~ N(0, s²) with s = init_scale (default 0.02),
        residual projections ~ N(0, s²/(2·n_layer)), layer-norm weights 1."""
        std = 0.02 if init_scale is None else float(init_scale)
        if std < 0:
            raise ValueError(f"init_scale must be >= 0, got {init_scale}")
        g = torch.Generator().manual_seed(seed)
        params = {}
        for name, p in self.model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.startswith("ln_f"):
                value = torch.ones(p.shape)
            else:
                residual = name.endswith("c_proj.weight") or name.endswith("mlp.2.weight")
                s = std / math.sqrt(2 * self.n_layer) if residual else std
                value = torch.randn(p.shape, generator=g) * s
            params[name] = value.to(device=self.device, dtype=p.dtype)
        return params

    def loss(self, params: dict[str, Tensor], batch: tuple[Tensor, Tensor]) -> Tensor:
        """Mean next-character cross-entropy (nats) of the GPT with parameters ``params`` on ``batch``."""
        x, y = batch
        return functional_call(self.model, params, (x, y))

    def _draw(self, split: str, stream: str, index: int) -> tuple[Tensor, Tensor]:
        data = self.splits[split]
        g = _generator(self.seed, stream, index)
        ix = torch.randint(len(data) - self.block_size, (self.batch_size,), generator=g)
        x = torch.stack([data[i : i + self.block_size] for i in ix])
        y = torch.stack([data[i + 1 : i + 1 + self.block_size] for i in ix])
        return x.to(self.device), y.to(self.device)

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        """The training batch of step ``step``: x, y ``(batch_size, block_size)`` int64, from (seed, step)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return self._draw("train", "batch", step)

    def eval_batches(self, split: str, n: int) -> list[tuple[Tensor, Tensor]]:
        """``n`` fixed batches of ``split`` ("train" | "val"), the same on every call."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return [self._draw(split, split, i) for i in range(n)]

    @torch.no_grad()
    def evaluate(self, params: dict[str, Tensor], split: str = "val", n: int = 20) -> float:
        """Mean loss over ``eval_batches(split, n)`` with dropout off (nanoGPT's ``estimate_loss``)."""
        was_training = self.model.training
        self.model.eval()
        try:
            losses = [self.loss(params, b).item() for b in self.eval_batches(split, n)]
        finally:
            self.model.train(was_training)
        return float(np.mean(losses))

    def decode(self, tokens: Sequence[int]) -> str:
        """Characters of the token ids ``tokens``."""
        return "".join(self.vocab[i] for i in tokens)


def read_corpus(path: str | Path | None = None) -> str:
    """The text at ``path``, or at ``../shared/data/tinyshakespeare.txt`` beside the repository."""
    p = DEFAULT_CORPUS if path is None else Path(path)
    if not p.is_file():
        hint = "pass path=... to shakespeare_char (the text file of tiny Shakespeare, ~1.1 MB)"
        raise CorpusNotFoundError(f"tiny Shakespeare text not found at {p}; {hint}")
    return p.read_text(encoding="utf-8")


def shakespeare_char(
    path: str | Path | None = None,
    block_size: int = 64,
    batch_size: int = 12,
    n_layer: int = 4,
    n_head: int = 4,
    n_embd: int = 128,
    dropout: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
) -> ShakespeareProblem:
    """The paper's configuration by default: 4 layers, 4 heads, n_embd 128, block 64, batch 12, dropout 0."""
    for name, value in (
        ("block_size", block_size),
        ("batch_size", batch_size),
        ("n_layer", n_layer),
        ("n_head", n_head),
        ("n_embd", n_embd),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if n_embd % n_head:
        raise ValueError(f"n_embd must be divisible by n_head, got n_embd={n_embd}, n_head={n_head}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    text = read_corpus(path)
    return ShakespeareProblem(text, block_size, batch_size, n_layer, n_head, n_embd, dropout, seed, device)
