"""Specification of the paper's Transformer problem and a reduced-size reproduction of its benchmark.

The paper (Hu, Cao, Liu, arXiv 2507.19968) trains nanoGPT's char-level GPT on tiny Shakespeare.
Here: the problem's shapes and parameter count (``landscapes/shakespeare.py``, arithmetic from the
architecture), the published optimizer code driven by the training script's forward-only closure
(``DEO.md`` defect 2: N is NaN from the first rotation at step 10 with the v4 code, frozen at its
random start with the v7 code), and the curvature our DEO's dimer finds on a tiny GPT against
Lanczos on exact Hessian-vector products. The real text is used when ``../shared/data`` is beside
the repository; otherwise a synthetic text over the same 65 characters.
"""

import argparse
import math
import random

import pytest
import torch

from benchmarks import paper
from deo.baselines import PublishedDimer
from deo.hessian import hvp, lanczos_min_eig
from deo.optim import DEO
from landscapes.shakespeare import DEFAULT_CORPUS, CorpusNotFoundError, shakespeare_char

# The 65 characters of tiny Shakespeare.
ALPHABET = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TINY = {"block_size": 8, "batch_size": 4, "n_layer": 1, "n_head": 2, "n_embd": 8}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    if DEFAULT_CORPUS.is_file():
        return str(DEFAULT_CORPUS)
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("corpus") / "synthetic.txt"
    path.write_text(ALPHABET + "".join(rng.choice(ALPHABET) for _ in range(20_000)))
    return str(path)


def gpt_parameter_count(vocab: int, block: int, n_layer: int, n_embd: int) -> int:
    """nanoGPT without biases: per block 12·C² (qkv 3C², proj C², MLP 8C²) + 2C (two LayerNorm
    weights); token V·C (tied with the output) + position T·C embeddings; final LayerNorm C."""
    return n_layer * (12 * n_embd**2 + 2 * n_embd) + vocab * n_embd + block * n_embd + n_embd


def test_papers_configuration_has_the_published_size(corpus):
    torch.manual_seed(0)
    problem = shakespeare_char(corpus)
    assert problem.vocab_size == 65
    assert problem.n_params == gpt_parameter_count(65, 64, 4, 128) == 804_096
    # nanoGPT's reported size leaves the position embeddings out: "0.80M"
    assert f"{(problem.n_params - 64 * 128) / 1e6:.2f}M" == "0.80M"
    x, y = problem.batch(0)
    assert x.shape == y.shape == (12, 64) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # next-character targets


def test_batches_depend_on_the_step_only_and_eval_batches_are_fixed(corpus):
    a, b = shakespeare_char(corpus, **TINY), shakespeare_char(corpus, **TINY)
    for step in (0, 7, 1234):
        assert all(torch.equal(u, v) for u, v in zip(a.batch(step), b.batch(step)))
    assert not torch.equal(a.batch(0)[0], a.batch(1)[0])
    first, second = a.eval_batches("val", 3), b.eval_batches("val", 3)
    assert all(torch.equal(u[0], v[0]) for u, v in zip(first, second))
    assert not torch.equal(a.eval_batches("train", 1)[0][0], first[0][0])
    assert len(a.splits["train"]) == int(0.9 * (len(a.splits["train"]) + len(a.splits["val"])))


def test_missing_text_raises_a_file_not_found_error_that_says_to_pass_a_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="pass path="):
        shakespeare_char(tmp_path / "absent.txt")
    assert issubclass(CorpusNotFoundError, FileNotFoundError)


def test_invalid_sizes_are_refused_with_the_allowed_values(corpus):
    with pytest.raises(ValueError, match="divisible by n_head"):
        shakespeare_char(corpus, n_embd=10, n_head=4)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        shakespeare_char(corpus, block_size=0)


def test_initial_loss_is_close_to_log_vocab(corpus):
    # Init std 0.02: the logits h·wteᵀ have std ≈ 0.02·√C ≈ 0.23 (h is layer-normed), so the
    # cross-entropy is ln V + O(0.23²/2) ≈ ln 65 + 0.03.
    problem = shakespeare_char(corpus)
    loss = problem.evaluate(problem.params0(seed=0), "val", 2)
    assert abs(loss - math.log(65)) < 0.1


def tiny_args(corpus: str, steps: int, **overrides) -> argparse.Namespace:
    """Benchmark arguments for the tiny GPT: eval every step on one batch, no Lanczos (Rayleigh only)."""
    args = paper.parse_args(["--steps", str(steps), "--path", corpus, "--eval-every", "1"])
    args.eval_batches = 1
    for key, value in {**TINY, "threads": 1, "diagnostics": False, **overrides}.items():
        setattr(args, key, value)
    return args


def test_published_code_with_forward_only_closure_has_nan_direction_from_step_10(
    corpus, tmp_path, monkeypatch
):
    # DEO.md defect 2: the dimer's second gradient equals the first, ‖F_∥‖ = 0, and 0/0 makes N NaN
    # at the first rotation (step 10); the run itself goes on (plain Adam on the raw gradient).
    monkeypatch.setattr(paper, "CHECKPOINTS", tmp_path)
    result = paper.train("deo_published_forward", tiny_args(corpus, 12, name="test"), log=lambda line: None)
    finite = [d["n_finite"] for d in result["diagnostics"]]
    assert [d["step"] for d in result["diagnostics"]] == list(range(1, 13))
    assert finite == [True] * 9 + [False] * 3
    assert all(math.isfinite(c["val_loss"]) for c in result["curve"])
    # the same code with a working closure keeps a finite direction that moves
    result = paper.train("deo_published", tiny_args(corpus, 12, name="test"), log=lambda line: None)
    assert all(d["n_finite"] for d in result["diagnostics"])
    assert result["diagnostics"][-1]["n_change"] > 1e-3


def test_published_v7_code_with_forward_only_closure_keeps_its_random_direction(corpus):
    # v7: n ← N + η·perp_N(G2 − G1) with G2 = G1 leaves N; only the renormalisation n/(‖n‖ + 1e-8)
    # touches it: in float32 (the parameters' dtype) a relative change below 1e-6 after 3 rotations.
    problem = shakespeare_char(corpus, **TINY)
    params = {n: p.requires_grad_(True) for n, p in problem.params0(seed=0).items()}
    opt = PublishedDimer(list(params.values()), variant="v7", closure_mode="published", lr=1e-3, seed=0)
    n0 = opt.diagnostics()["direction"].clone()
    for step in range(30):
        batch = problem.batch(step)

        def closure(batch=batch):
            loss = problem.loss(params, batch)
            loss.backward()
            return loss

        opt.step(closure)
    n = opt.diagnostics()["direction"]
    assert opt.rotation_events == 3
    assert torch.allclose(n, n0, rtol=1e-6, atol=1e-9)


def test_deo_dimer_curvature_matches_lanczos_min_eigenvalue_on_a_tiny_gpt(corpus):
    # At a fixed point (lr = 0) and a fixed batch, rotating every step drives N to the minimum-
    # curvature eigenvector. The Rayleigh quotient obeys λ_min ≤ NᵀHN ≤ λ_min + sin²∠(N, v_min)·(λ_max −
    # λ_min); the central-difference curvature is NᵀHN + O(ΔR²). DEO.md's acceptance tolerance:
    # |C − λ_min| < 1e-3·(λ_max − λ_min). float64 throughout; init scale 0.3 gives clear negative
    # curvature (a 0.02 init is nearly flat).
    torch.manual_seed(0)
    problem = shakespeare_char(corpus, **TINY)
    params = {n: p.double().requires_grad_(True) for n, p in problem.params0(init_scale=0.3, seed=0).items()}
    batch = problem.batch(0)
    opt = DEO(
        list(params.values()), base="adam", lr=0.0, rotate_every=1, rotations=4, scheme="central", seed=0
    )

    def closure():
        loss = problem.loss(params, batch)
        loss.backward()
        return loss

    for _ in range(25):
        opt.step(closure)
    names = list(params)
    truth = paper.GroundTruth(problem, names, {n: p.shape for n, p in params.items()}, batch)
    theta = torch.cat([params[n].detach().reshape(-1) for n in names])
    lam_min, _, _ = lanczos_min_eig(lambda v: hvp(truth.loss, theta, v), theta.numel(), tol=1e-10)
    lam_max, _, _ = lanczos_min_eig(lambda v: -hvp(truth.loss, theta, v), theta.numel(), tol=1e-10)
    lam_max = -lam_max
    assert lam_min < 0 < lam_max
    width = lam_max - lam_min
    diagnostics = opt.diagnostics()
    n = diagnostics["direction"]
    assert abs(diagnostics["curvature"] - lam_min) < 1e-3 * width
    assert -1e-9 * width <= truth.rayleigh(theta, n) - lam_min < 1e-3 * width
    assert torch.equal(theta, torch.cat([params[k].detach().reshape(-1) for k in names]))  # lr = 0: θ fixed


def test_learning_rate_schedule_is_nanogpt_cosine_with_warmup():
    assert paper.learning_rate(0) == pytest.approx(1e-3 / 101)
    assert paper.learning_rate(99) == pytest.approx(1e-3 * 100 / 101)
    assert paper.learning_rate(100) == pytest.approx(1e-3)
    assert paper.learning_rate(10_050) == pytest.approx(1e-4 + 0.5 * 9e-4)  # halfway: cos(π/2) = 0
    assert paper.learning_rate(20_000) == pytest.approx(1e-4)
    assert paper.learning_rate(25_000) == 1e-4


def test_dimer_runs_clip_with_deos_own_max_grad_norm_and_baselines_in_the_closure(corpus):
    problem = shakespeare_char(corpus, **TINY, seed=0)
    params = {n: p.requires_grad_(True) for n, p in problem.params0(seed=0).items()}
    for key in ("deo_paper", "deo_escape", "deo_paper_random"):
        opt = paper.make_optimizer(key, params, seed=0)
        assert isinstance(opt, DEO) and opt.defaults["max_grad_norm"] == paper.CLIP
    for key in ("adam", "adamw", "adam_l2"):
        opt = paper.make_optimizer(key, params, seed=0)
        assert type(opt) in (torch.optim.Adam, torch.optim.AdamW)  # no patched step: train() clips


@pytest.mark.parametrize("key", ["deo_paper", "deo_published"])
def test_resume_continues_exactly_like_the_uninterrupted_run(key, corpus, tmp_path, monkeypatch):
    # the split at step 6 falls between the rotations at steps 0 and 10 (DEO) / 10 (published)
    monkeypatch.setattr(paper, "CHECKPOINTS", tmp_path)
    quiet = {"log": lambda line: None}
    straight = paper.train(key, tiny_args(corpus, 12, name="a", eval_every=6), **quiet)
    paper.train(key, tiny_args(corpus, 6, name="b", eval_every=6), **quiet)
    resumed = paper.train(key, tiny_args(corpus, 12, name="b", eval_every=6, resume=True), **quiet)
    assert straight["curve"] == resumed["curve"]
    assert [d["rayleigh"] for d in straight["diagnostics"]] == [d["rayleigh"] for d in resumed["diagnostics"]]
