"""LogME (You et al., ICML 2021; the fixed-point algorithm of "Ranking and Tuning Pre-trained Models", JMLR 2022)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hubbench.rankers.base import Ranker, Score, register

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Evidence:
    value: float  # the mean over target columns of the maximised log evidence per sample
    weights: torch.Tensor  # [C, D] float64: each column's posterior mean m
    alphas: torch.Tensor  # [C] prior precision at the maximum
    betas: torch.Tensor  # [C] noise precision at the maximum


def target_columns(targets: torch.Tensor) -> torch.Tensor:
    """[N, C] float64 columns: one-vs-rest 0/1 per class (class indices [N]), else the regression targets."""
    import torch

    if targets.dim() == 1:
        return torch.nn.functional.one_hot(targets.long(), int(targets.max()) + 1).double()
    return targets.double()


def log_evidence(features: torch.Tensor, targets: torch.Tensor, max_steps: int = 11, tol: float = 1e-3,
                 eps: float = 1e-5, exact: bool = False) -> Evidence:
    """Maximise the evidence of y = f.m + noise (prior m ~ N(0, 1/alpha), noise ~ N(0, 1/beta)) for each
    target column, by the fixed-point updates alpha = gamma / |m|^2, beta = (N - gamma) / |y - f m|^2 from
    alpha = beta = 1, for at most `max_steps` steps, until alpha/beta moves by at most `tol` (relative).

    One thin SVD of f serves every column: with f = U S V^T and x = U^T y, everything is a sum over the
    singular values. Computed in float64. As the public code, the evidence is evaluated at the updated
    (alpha, beta) with the m of the step's start, and m at the end is that of the last step's start.

    log|A| = sum log(alpha + beta sigma_i) over the eigenvalues of f^T f. By default it runs over those the
    public code (thuml/LogME, `_fit_fixed_point`) sums (`public_terms`): where N <= D, the N of f's thin SVD,
    so the D - N zero eigenvalues' log(alpha) terms are dropped; where N > D, those whose square root, from
    numpy's SVD of f^T f, exceeds 1e-10. Zero eigenvalues pass that cutoff or not as floating point has it:
    at unit scale a rank deficiency's usually come out at 1e-8 to 1e-6 (kept), at a small scale below 1e-10
    (dropped), and an all-zero channel's (a dead ReLU's) may come out exactly 0 (dropped) or not, depending on
    the LAPACK build. `exact` keeps all D (the true evidence of the model): where terms are dropped it adds
    their -log(alpha) / 2N each, which differs between sources and can change the ranking.
    """
    import torch

    f = features.double()
    y = target_columns(targets)
    n, d = f.shape
    u, singular, vh = torch.linalg.svd(f, full_matrices=False)
    keep = singular > 1e-10 * singular.max()  # the rank of f
    u, s, vh = u[:, keep], singular[keep, None], vh[keep]
    sigma = s**2  # [k, 1], the non-zero eigenvalues of f^T f
    zeros = (d if exact else public_terms(f, singular)) - len(sigma)  # zero eigenvalues whose log(alpha) enters log|A|
    x = u.T @ y  # [k, C]
    x2 = x**2
    residual_outside = (y**2).sum(0) - x2.sum(0)  # |y|^2 outside the span of f
    values, ms, alphas, betas = [], [], [], []
    for c in range(y.shape[1]):
        alpha, beta = 1.0, 1.0
        for _ in range(max_steps):
            t = alpha / beta
            gamma = (sigma / (sigma + t)).sum().item()
            m2 = (sigma * x2[:, c:c + 1] / (t + sigma) ** 2).sum().item()
            res2 = (x2[:, c:c + 1] / (1 + sigma / t) ** 2).sum().item() + residual_outside[c].item()
            alpha, beta = gamma / (m2 + eps), (n - gamma) / (res2 + eps)
            if abs(alpha / beta - t) / t <= tol:
                break
        evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta)
                    - 0.5 * (torch.log(alpha + beta * sigma).sum().item() + zeros * math.log(alpha))
                    - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * math.log(2 * math.pi)) / n
        values.append(evidence)
        ms.append((vh.T @ (s * x[:, c:c + 1] / (t + sigma))).squeeze(1))
        alphas.append(alpha)
        betas.append(beta)
    return Evidence(sum(values) / len(values), torch.stack(ms), torch.tensor(alphas), torch.tensor(betas))


def public_terms(f: torch.Tensor, s: torch.Tensor) -> int:
    """How many eigenvalues of f^T f the public code's log|A| sums over: min(N, D) where N <= D (its thin SVD
    of f); where N > D, those whose square root exceeds 1e-10, computed as it computes them (numpy's full SVD
    of f^T f in float64), since which zero eigenvalues pass depends on that arithmetic. That SVD is skipped
    where f's singular values `s` (f's own SVD: accurate, its zero ones at ~1e-16 of the largest) are all
    clearly non-zero, as the public code's come out too: it then keeps all D."""
    n, d = f.shape
    if n <= d:
        return n
    if len(s) == d and s.min() > max(1e-6 * s.max(), 1e-9):
        return d
    import numpy as np

    gram = (f.T @ f).numpy()
    return int((np.sqrt(np.linalg.svd(gram)[1]) > 1e-10).sum())


@register
class LogME(Ranker):
    """LogME: the maximum log evidence of a Bayesian linear model from the features to the targets,
    per sample and averaged over target columns.

    Fixed by the papers: one-vs-rest 0/1 targets per class (each column of a regression's targets:
    here the landmarks' coordinates as fractions of the image, so it serves both task kinds), the
    fixed-point iteration from alpha = beta = 1 (at most 11 steps, relative tolerance 1e-3, 1e-5
    added to the denominators), float64, and (by the public code, which the papers' numbers come
    from) log|A| over the eigenvalues the public code keeps (`public_terms`). Chosen: the features are
    those of `hubbench.features` (pooled, no augmentation); `exact=True` gives the true evidence, with the
    zero eigenvalues' terms that the public code drops (see `log_evidence`).
    The posterior means [C, D] are kept: B-Tuning projects features with them.
    """

    name = "logme"
    description = "LogME: maximum evidence of a Bayesian linear model on the features (classification, regression)"
    max_steps: int = 11
    tol: float = 1e-3
    exact: bool = False

    def score(self, features, targets):
        evidence = log_evidence(features.features, targets, self.max_steps, self.tol, exact=self.exact)
        return Score(evidence.value, evidence.weights.float())
