"""The rankers' scores against their definitions: LogME against a direct evidence maximisation, LEEP,
NCE and H-score on cases whose answer is known."""

import math

import pytest
import torch
from hubbench.rankers import RANKERS, NotScored, SourceFeatures
from hubbench.rankers.logme import log_evidence


def reference_logme(f, y, steps=11, tol=1e-3, eps=1e-5):
    """Evidence maximisation written out in the weights' space, without the SVD: A = alpha I + beta f^T f,
    m = beta A^-1 f^T y, gamma = D - alpha tr(A^-1); the evidence with log|A| over all D eigenvalues."""
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
        log_det = torch.linalg.slogdet(alpha * torch.eye(d, dtype=torch.float64) + beta * f.T @ f)[1].item()
        values.append((d / 2 * math.log(alpha) + n / 2 * math.log(beta) - log_det / 2
                       - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * math.log(2 * math.pi)) / n)
        ms.append(m)
    return sum(values) / len(values), torch.stack(ms)


@pytest.mark.parametrize("n,d", [(80, 12), (9, 20)])  # more samples than dimensions, and fewer
@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_logme_equals_a_direct_evidence_maximisation(n, d, kind):
    g = torch.Generator().manual_seed(n * d)
    f = torch.randn(n, d, generator=g, dtype=torch.float64) + 0.5
    if kind == "classification":
        y = torch.arange(n) % 4
        f[:, :4] += torch.nn.functional.one_hot(y, 4) * 2  # informative features
        columns = torch.nn.functional.one_hot(y).double()
    else:
        y = f[:, :3] @ torch.randn(3, 2, generator=g, dtype=torch.float64)
        y += 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)
        columns = y
    expected, means = reference_logme(f, columns)
    got = log_evidence(f, y)
    assert abs(got.value - expected) < 1e-6
    assert torch.allclose(got.weights, means, atol=1e-6)


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


def test_leep_matches_its_formula_on_soft_outputs():
    g = torch.Generator().manual_seed(1)
    probs = torch.rand(30, 5, generator=g).softmax(1).double()
    y = torch.randint(0, 3, (30,), generator=g)
    joint = torch.stack([probs[y == c].sum(0) for c in range(3)]) / 30
    expected = sum(math.log(sum(probs[i, z] * joint[y[i], z] / joint[:, z].sum() for z in range(5)))
                   for i in range(30)) / 30
    assert RANKERS.get("leep")().score(features(probs.float()), y).value == pytest.approx(expected, rel=1e-5)


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
