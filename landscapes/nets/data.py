"""Data sets of ``NETWORKS.md``, generated in code from a seed (no downloads).

Every function returns ``(inputs, targets)`` as float64 / int64 tensors; the problem casts them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def xor_data() -> tuple[Tensor, Tensor]:
    """The four corners x ∈ {±1}² with target −x₁x₂: X (4, 2), y (4,)."""
    X = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    return X, -X[:, 0] * X[:, 1]


def two_moons_data(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[Tensor, Tensor]:
    """scikit-learn's ``make_moons(n, noise=noise, random_state=seed)`` then ``StandardScaler``.

    Outer moon (cos t, sin t), inner moon (1 − cos t, 1 − sin t − 0.5), t ∈ [0, π] evenly spaced; the
    points are shuffled and Gaussian noise of std ``noise`` added with ``numpy.random.RandomState(seed)``
    in scikit-learn's order, so the points are identical to scikit-learn's. Each coordinate is then
    standardised (mean 0, population std 1). Targets ±1 (outer −1, inner +1). X (n, 2), y (n,).
    """
    n_out = n // 2
    n_in = n - n_out
    rng = np.random.RandomState(seed)
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    X = np.vstack(
        [np.append(np.cos(t_out), 1 - np.cos(t_in)), np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5)]
    ).T
    y = np.hstack([-np.ones(n_out), np.ones(n_in)])
    order = np.arange(n)
    rng.shuffle(order)
    X, y = X[order], y[order]
    X = X + rng.normal(scale=noise, size=X.shape)
    X = (X - X.mean(0)) / X.std(0)
    return torch.from_numpy(X), torch.from_numpy(y)


def spirals_data(n_classes: int = 3, n_per_class: int = 100, seed: int = 0) -> tuple[Tensor, Tensor]:
    """K interleaved spirals (CS231n): r = linspace(0, 1, N), θ = linspace(4j, 4(j+1), N) + 0.2·noise,
    x = r (sin θ, cos θ) for class j. X (K·N, 2) float64, labels (K·N,) int64."""
    g = torch.Generator().manual_seed(seed)
    xs, labels = [], []
    r = torch.linspace(0, 1, n_per_class, dtype=torch.float64)
    for j in range(n_classes):
        theta = torch.linspace(4 * j, 4 * (j + 1), n_per_class, dtype=torch.float64)
        theta = theta + 0.2 * torch.randn(n_per_class, generator=g, dtype=torch.float64)
        xs.append(torch.stack([r * torch.sin(theta), r * torch.cos(theta)], dim=1))
        labels.append(torch.full((n_per_class,), j, dtype=torch.int64))
    return torch.cat(xs), torch.cat(labels)


def teacher_student_data(
    n_inputs: int = 100, n_teachers: int = 4, n_samples: int = 4000, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Soft committee teacher (Saad & Solla 1995): y = Σₘ tanh(bₘ·x/√N), x ~ N(0, I_N).

    The M teacher vectors are orthogonal with ‖bₘ‖² = N (QR of a Gaussian matrix). X (P, N), y (P,).
    """
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n_inputs, n_teachers, generator=g, dtype=torch.float64))
    teachers = q.T * math.sqrt(n_inputs)
    X = torch.randn(n_samples, n_inputs, generator=g, dtype=torch.float64)
    return X, torch.tanh(X @ teachers.T / math.sqrt(n_inputs)).sum(dim=1)


def deep_linear_data(
    singular_values: tuple[float, ...] = (3.0, 2.0, 1.0), dim: int = 6, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Saxe et al. (2014): whitened inputs X = I_d and target map T = U diag(s) Vᵀ (random orthogonal U, V).

    Sample i is eᵢ with target T eᵢ, so the inputs are I (d, d) and the targets Tᵀ (d, d); also returns
    U and V (d, d), whose first columns are the modes (strongest first).
    """
    if len(singular_values) > dim:
        raise ValueError(f"at most dim = {dim} singular values, got {len(singular_values)}")
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    s = torch.zeros(dim, dtype=torch.float64)
    s[: len(singular_values)] = torch.tensor(singular_values, dtype=torch.float64)
    T = U @ torch.diag(s) @ V.T
    return torch.eye(dim, dtype=torch.float64), T.T.contiguous(), U, V
