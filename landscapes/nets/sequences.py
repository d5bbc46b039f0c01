"""Algorithmic sequence tasks for the tiny Transformer, generated from a seed.

A sequence is ``x₁ … x_L SEP y₁ … y_m`` over the tokens 0 … p−1 plus SEP = p. The model reads the
sequence without its last token and predicts the next token; only the answer tokens y count (the
targets of the prompt positions are −100, cross-entropy's ``ignore_index``).

- ``neighbour_sum``: yᵢ = (xᵢ + xᵢ₊₁) mod p, m = L − 1. No answer token is correlated with any single
  prompt token, so the loss sits at ln p until attention learns to fetch the two neighbours — a
  plateau, then an abrupt drop (Gopalani & Hu's moving-window sums).
- ``copy`` (y = x), ``reverse`` (y = x reversed), ``sort`` (y = x sorted), m = L: each answer token
  is carried by one prompt token, so the loss falls from the start (no clear plateau).
"""

from __future__ import annotations

import torch
from torch import Tensor

TASKS = ("neighbour_sum", "copy", "reverse", "sort")
IGNORE = -100


def answers(task: str, x: Tensor, vocab: int) -> Tensor:
    """The answer tokens of prompts x (n, L) int64: (n, L − 1) for neighbour_sum, else (n, L)."""
    if task == "neighbour_sum":
        return (x[:, :-1] + x[:, 1:]) % vocab
    if task == "copy":
        return x.clone()
    if task == "reverse":
        return x.flip(1)
    if task == "sort":
        return x.sort(dim=1).values
    raise ValueError(f"unknown task {task!r}; allowed: {list(TASKS)}")


def sequence_task(
    task: str, n_sequences: int, length: int, vocab: int, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Inputs (n, T) and next-token targets (n, T) int64, T = L + m; prompt targets are ``IGNORE``."""
    if length < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    if vocab < 2:
        raise ValueError(f"vocab must be >= 2, got {vocab}")
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (n_sequences, length), generator=g)
    y = answers(task, x, vocab)
    sep = torch.full((n_sequences, 1), vocab, dtype=torch.int64)
    full = torch.cat([x, sep, y], dim=1)
    inputs, targets = full[:, :-1], full[:, 1:].clone()
    targets[:, :length] = IGNORE  # the prompt tokens and SEP are given, not predicted
    return inputs, targets
