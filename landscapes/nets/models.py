"""Small modules of ``NETWORKS.md``; parameters are replaced at call time by ``functional_call``."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

TanhLayer = tuple[Tensor, Tensor, Tensor]  # P (B, H), W₂ (K, H), b₂ (K,) of f(x) = W₂ tanh(P) + b₂


class TanhMLP(nn.Module):
    """One tanh hidden layer and a linear output: f(x) = W₂ tanh(W₁x + b₁) + b₂.

    Parameters ``hidden.weight`` (H, n_in), ``hidden.bias`` (H,), ``output.weight`` (K, H),
    ``output.bias`` (K,). x (B, n_in) -> (B, K), or (B,) when K = 1.
    """

    def __init__(self, n_in: int, n_hidden: int, n_out: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_in, n_hidden)
        self.output = nn.Linear(n_hidden, n_out)

    def forward(self, x: Tensor) -> Tensor:
        out = self.output(torch.tanh(self.hidden(x)))
        return out.squeeze(-1) if out.shape[-1] == 1 else out

    def tanh_layer(self, params: dict[str, Tensor], x: Tensor, direction: bool = False) -> TanhLayer:
        """The network as f(x) = W₂ tanh(P) + b₂ at the parameters ``params``: the pre-activations
        P = W₁x + b₁ (B, H), W₂ (K, H) and b₂ (K,). All three are linear in the parameters, so a
        direction of parameter space (``direction=True``) gives them the same way."""
        pre = torch.addmm(params["hidden.bias"], x, params["hidden.weight"].T)
        return pre, params["output.weight"], params["output.bias"]


class DeepLinear(nn.Module):
    """A product of L square matrices without biases: f(x) = W_L⋯W₁x; ``layers.i.weight`` (d, d)."""

    def __init__(self, dim: int, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(n_layers))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class SoftCommittee(nn.Module):
    """Student of Saad & Solla: f(x) = Σₖ tanh(wₖ·x/√N), second layer fixed to 1; ``hidden.weight`` (K, N)."""

    def __init__(self, n_inputs: int, n_units: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_inputs, n_units, bias=False)
        self.scale = 1.0 / math.sqrt(n_inputs)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.hidden(x) * self.scale).sum(dim=-1)

    def tanh_layer(self, params: dict[str, Tensor], x: Tensor, direction: bool = False) -> TanhLayer:
        """The network as f(x) = W₂ tanh(P) + b₂ (see :meth:`TanhMLP.tanh_layer`): P = scale·(W x),
        W₂ = 1 (1, K units), b₂ = 0. W₂ is fixed, so a direction of parameter space
        (``direction=True``) moves only P: its W₂ is 0."""
        weight = params["hidden.weight"]
        out = weight.new_zeros if direction else weight.new_ones
        return torch.mm(x, weight.T) * self.scale, out(1, weight.shape[0]), weight.new_zeros(1)
