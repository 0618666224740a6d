"""The rankers' scores against independent implementations of their formulas (written out in loops or
in another space, as the public code and the papers define them) on cases chosen to separate plausible
wrong versions: imbalanced classes, a one-sample class, a class index absent from the training split,
N < D, rank-deficient features, sources with many classes; and on cases whose answer is known."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hubbench.rankers import RANKERS, NotScored, SourceFeatures
from hubbench.rankers.logme import log_evidence


def reference_logme(f, y, exact, steps=11, tol=1e-3, eps=1e-5):
    """Evidence maximisation written out in the weights' space, without the SVD: A = alpha I + beta f^T f,
    m = beta A^-1 f^T y, gamma = D - alpha tr(A^-1). log|A| over all D eigenvalues (`exact`), else as the
    public code: log|alpha I + beta f f^T| when N <= D (so the D - N zero eigenvalues of f^T f, and their
    log(alpha), are left out); when N > D, over the eigenvalues of f^T f whose square root, from numpy's SVD
    of f^T f, exceeds 1e-10."""
    n, d = f.shape
    values, ms = [], []
    for c in range(y.shape[1]):
        col = y[:, c]
        alpha = beta = 1.0
        for _ in range(steps):
            a = alpha * torch.eye(d, dtype=torch.float64) + beta * f.T @ f
            m = beta * torch.linalg.solve(a, f.T @ col)
            gamma = d - alpha * torch.trace(torch.linalg.inv(a)).item()
            m2, res2 = (m @ m).item(), ((col - f @ m) ** 2).sum().item()
            new_alpha, new_beta = gamma / (m2 + eps), (n - gamma) / (res2 + eps)
            done = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) <= tol
            alpha, beta = new_alpha, new_beta
            if done:
                break
        if exact or n <= d:
            gram = f.T @ f if exact else f @ f.T
            log_det = torch.linalg.slogdet(alpha * torch.eye(len(gram), dtype=torch.float64) + beta * gram)[1].item()
        else:
            eigenvalues = np.linalg.svd((f.T @ f).numpy())[1]
            log_det = np.log(alpha + beta * eigenvalues[np.sqrt(eigenvalues) > 1e-10]).sum()
        values.append((d / 2 * math.log(alpha) + n / 2 * math.log(beta) - log_det / 2
                       - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * math.log(2 * math.pi)) / n)
        ms.append(m)
    return sum(values) / len(values), torch.stack(ms)


def labels(n, g):
    """Imbalanced classes of `n` samples: 0 about half, 1 once, 3 never (an index absent from the
    training split), 2, 4 and 5 a few times; in a random order."""
    pattern = [0, 2, 0, 4, 0, 5, 2, 0]
    y = torch.tensor([1] + [pattern[i % len(pattern)] for i in range(n - 1)])
    return y[torch.randperm(n, generator=g)]


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("n,d,rank", [(80, 12, 12), (9, 20, 9), (12, 30, 5), (40, 12, 6)])  # N >< D, rank < D
@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_logme_equals_the_evidence_written_out(n, d, rank, kind, exact):
    g = torch.Generator().manual_seed(n * d + rank)
    f = torch.randn(n, rank, generator=g, dtype=torch.float64) @ torch.randn(rank, d, generator=g, dtype=torch.float64)
    f += 0.5 * (rank == d)  # off-centre (a full-rank f only: a constant would add a rank)
    if kind == "classification":
        y = labels(n, g)
        columns = torch.nn.functional.one_hot(y, int(y.max()) + 1).double()  # the absent class's column too
        f[:, :6] += columns[:, :6] * 2  # informative features
    else:
        y = f[:, :3] @ torch.randn(3, 2, generator=g, dtype=torch.float64)
        y += 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)
        columns = y
    expected, means = reference_logme(f, columns, exact)
    got = log_evidence(f, y, exact=exact)
    assert got.value == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(got.weights, means, atol=1e-6)
    score = RANKERS.get("logme")(exact=exact).score(features(feats=f.float()), y).value
    assert score == pytest.approx(log_evidence(f.float(), y, exact=exact).value, rel=1e-9)


def test_the_public_evidence_drops_the_zero_eigenvalues_only_where_n_is_below_d():
    g = torch.Generator().manual_seed(3)
    for n, d in ((9, 20), (40, 20)):
        f, y = torch.randn(n, d, generator=g, dtype=torch.float64), torch.arange(n) % 3
        exact, public = log_evidence(f, y, exact=True), log_evidence(f, y)
        dropped = (d - n) * torch.log(exact.alphas) / (2 * n) if n < d else torch.zeros(3)
        assert public.value - exact.value == pytest.approx(dropped.mean().item(), rel=1e-6, abs=1e-12)


def low_rank(n, d, rank, g, scale=1.0):
    return scale * torch.randn(n, rank, generator=g, dtype=torch.float64) @ torch.randn(rank, d, generator=g,
                                                                                         dtype=torch.float64)


def dead_channels(n, d, g):
    """Post-ReLU features with an all-zero last channel, whose eigenvalue numpy's SVD of f^T f gives as exactly 0."""
    f = torch.randn(n, d, generator=g, dtype=torch.float64).abs()
    f[:, -1] = 0  # (in the middle of f, its eigenvalue comes out near 1e-14, and is kept)
    return f


PUBLIC_CASES = {  # where the public code's log|A| drops terms, and where it keeps them
    "n-below-d": lambda g: torch.randn(9, 20, generator=g, dtype=torch.float64),
    "rank-deficient": lambda g: low_rank(40, 12, 6, g),  # zero eigenvalues at ~1e-8 of the largest: kept
    "small-scale": lambda g: low_rank(40, 12, 6, g, scale=1e-4),  # their roots below 1e-10: dropped
    "dead-channel": lambda g: dead_channels(300, 20, g),  # an eigenvalue of exactly 0: dropped
    "full-rank": lambda g: torch.randn(80, 12, generator=g, dtype=torch.float64) + 0.5,
}


@pytest.mark.parametrize("case", PUBLIC_CASES)
def test_the_registered_logme_default_is_the_public_fixed_point(case):
    """The ranker as a suite names it (`logme`, no parameter) scores as the public code does, on features whose
    zero eigenvalues it drops (N < D, a small scale, a dead channel) and keeps (unit-scale rank deficiency)."""
    g = torch.Generator().manual_seed(7)
    f = PUBLIC_CASES[case](g)
    y = torch.arange(len(f)) % 3
    terms = {"n-below-d": 9, "rank-deficient": 12, "small-scale": 6, "dead-channel": 19, "full-rank": 12}[case]
    roots = np.sqrt(np.linalg.svd((f.T @ f).numpy())[1])
    assert min(len(f), (roots > 1e-10).sum()) == terms  # the case is what it says
    expected, _ = reference_logme(f, torch.nn.functional.one_hot(y).double(), exact=False)
    score = RANKERS.get("logme")().score(features(feats=f), y).value
    assert score == pytest.approx(expected, rel=1e-9)


def test_logme_prefers_features_that_predict_the_labels():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 5
    noise = torch.randn(200, 16, generator=g)
    informative = noise.clone()
    informative[:, :5] += 3 * torch.nn.functional.one_hot(y, 5)
    assert log_evidence(informative, y).value > log_evidence(noise, y).value


def features(probs=None, feats=None, n=None):
    n = n or len(probs if probs is not None else feats)
    return SourceFeatures("s", feats if feats is not None else torch.zeros(n, 1), probs, 0.0, "")


def test_leep_and_nce_are_zero_when_the_source_labels_determine_the_target():
    y = torch.arange(60) % 3
    z = (y + 1) % 3 * 2  # a relabelling onto 6 source classes
    probs = torch.nn.functional.one_hot(z, 6).float()
    assert RANKERS.get("leep")().score(features(probs), y).value == pytest.approx(0, abs=1e-9)
    assert RANKERS.get("nce")().score(features(probs), y).value == pytest.approx(0, abs=1e-9)


def test_leep_and_nce_of_an_uninformative_source_are_minus_the_label_entropy():
    y = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2])
    prior = torch.bincount(y).double() / len(y)
    entropy = -(prior * prior.log()).sum().item()
    same = torch.full((8, 4), 0.25)  # the same output for every image
    assert RANKERS.get("nce")().score(features(same), y).value == pytest.approx(-entropy)
    assert RANKERS.get("leep")().score(features(same), y).value == pytest.approx(
        (prior[y].log()).mean().item())


def source_outputs(n, classes, g, sharp=3.0):
    """A source classifier's softmax over many classes (more than the samples when `classes` > n)."""
    return (sharp * torch.randn(n, classes, generator=g, dtype=torch.float64)).softmax(1)


def reference_leep(theta, y):
    """LEEP as the paper writes it, sample by sample: P(y, z) = (1/N) sum over samples of class y of
    theta_z, P(y | z) = P(y, z) / P(z); the mean over samples of log sum_z theta_z P(y | z)."""
    n, sources = theta.shape
    joint = [[sum(theta[i, z].item() for i in range(n) if y[i] == c) / n for z in range(sources)]
             for c in range(int(y.max()) + 1)]
    p_z = [sum(row[z] for row in joint) for z in range(sources)]
    return sum(math.log(sum(theta[i, z].item() * joint[y[i]][z] / p_z[z] for z in range(sources)))
               for i in range(n)) / n


def reference_nce(z, y):
    """NCE as the paper writes it: -H(Y | Z) = sum over (y, z) of P(y, z) log(P(y, z) / P(z)), counted."""
    n = len(y)
    pairs = {(int(a), int(b)) for a, b in zip(y, z, strict=True)}
    count = {p: sum(1 for a, b in zip(y, z, strict=True) if (int(a), int(b)) == p) for p in pairs}
    count_z = {b: sum(1 for c in z if int(c) == b) for _, b in pairs}
    return sum(k / n * math.log(k / count_z[b]) for (_, b), k in count.items())


@pytest.mark.parametrize("n,sources", [(30, 5), (9, 50)])  # few source classes; more than the samples
def test_leep_and_nce_equal_their_formulas(n, sources):
    g = torch.Generator().manual_seed(n + sources)
    y, probs = labels(n, g), source_outputs(n, sources, g)
    leep, nce = RANKERS.get("leep")(), RANKERS.get("nce")()
    assert leep.score(features(probs.float()), y).value == pytest.approx(reference_leep(probs.float().double(), y),
                                                                         rel=1e-9)
    assert nce.score(features(probs.float()), y).value == pytest.approx(reference_nce(probs.argmax(1), y), rel=1e-9)


def test_sources_without_a_classifier_are_not_scored_by_leep_and_nce():
    for name in ("leep", "nce"):
        with pytest.raises(NotScored, match="no image classifier"):
            RANKERS.get(name)().score(features(feats=torch.zeros(4, 2)), torch.arange(4) % 2)


def test_hscore_is_the_number_of_classes_minus_one_for_class_indicator_features():
    y = torch.arange(90) % 4
    onehot = torch.nn.functional.one_hot(y, 4).float()
    assert RANKERS.get("hscore")().score(features(feats=onehot), y).value == pytest.approx(3, rel=1e-6)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(90, 4, generator=g)
    assert RANKERS.get("hscore")().score(features(feats=noise), y).value < 0.5


def reference_hscore(f, y):
    """H-score as the Transfer-Learning-Library computes it: unbiased covariances of the features and
    of each sample's class mean, tr(pinv(cov_f) cov_g)."""
    g = torch.stack([f[y == y[i]].mean(0) for i in range(len(y))])
    return torch.trace(torch.linalg.pinv(torch.cov(f.T), rtol=1e-15) @ torch.cov(g.T)).item()


def test_hscore_equals_its_formula():
    g = torch.Generator().manual_seed(5)
    y = labels(60, g)
    f = torch.randn(60, 8, generator=g, dtype=torch.float64) + 3.0  # off-centre
    f[:, :6] += torch.nn.functional.one_hot(y, 6)[:, :6] * torch.linspace(0.5, 3, 6, dtype=torch.float64)
    f[:, 7] = 1e-3 * ((y == 0) + 0.3 * f[:, 7])  # informative at a small scale: a truncated pinv drops it
    score = RANKERS.get("hscore")().score(features(feats=f.float()), y).value
    assert score == pytest.approx(reference_hscore(f.float().double(), y), rel=1e-6)


def task_of(labels, kind="classification"):
    split = SimpleNamespace(targets=torch.tensor(labels))
    return SimpleNamespace(name="t", kind=kind, splits={"train": split}, ranking_targets=lambda t: t)


@pytest.mark.parametrize("name", ["logme", "leep", "nce", "hscore"])
def test_a_task_where_the_score_means_nothing_is_inapplicable(name):
    ranker = RANKERS.get(name)()
    ok, reason = ranker.applicable(None, task_of([2] * 10))
    assert not ok and "one class" in reason
    assert ranker.applicable(None, task_of([0, 1] * 5)) == (True, "")
    few = ranker.applicable(None, task_of([0, 1, 5, 7]))  # 4 samples, 8 classes
    if name in ("leep", "nce"):
        assert not few[0] and "4 training samples for 8 classes" in few[1]
    else:
        assert few == (True, "")
