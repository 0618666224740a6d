"""LEEP (Nguyen et al., ICML 2020): the log expected empirical prediction of the source's own classifier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubbench.rankers.base import NotScored, Ranker, Score, classification_only, register

if TYPE_CHECKING:
    import torch


def source_probs(features) -> torch.Tensor:
    """The source classifier's softmax [N, C_s] (float64); a source without one is not scored."""
    if features.probs is None:
        raise NotScored(f"source {features.source!r} has no image classifier (its pre-training head is not one)")
    return features.probs.double()


@register
class LEEP(Ranker):
    """LEEP: with theta(x) the source classifier's softmax over its C_s classes, the empirical joint
    P(y, z) = (1/N) sum over samples of class y of theta(x)_z gives P(y | z); the score is the mean log
    of sum_z theta(x)_z P(y_x | z), the likelihood of the "expected empirical predictor".

    Fixed by the paper: all of it. Chosen: the source's softmax at temperature 1 on the pooled
    features of one centre view (`hubbench.features`); sources without an image classifier (MoCo,
    the COCO bodies, the dense mini sources) are n/a; classification tasks with two classes or more
    and at least as many training samples as classes only (`rankers.base.meaningful`).
    """

    name = "leep"
    description = "LEEP: log-likelihood of the source classifier's outputs mapped to target labels (classification)"

    def applicable(self, hub, task):
        return classification_only(task, per_class=True)

    def score(self, features, targets):
        import torch

        theta = source_probs(features)  # [N, C_s]
        onehot = torch.nn.functional.one_hot(targets.long()).double()  # [N, C_t]
        joint = onehot.T @ theta / len(theta)  # [C_t, C_s]
        conditional = joint / joint.sum(0, keepdim=True).clamp_min(1e-300)  # P(y | z)
        predicted = (theta @ conditional.T).gather(1, targets.long()[:, None])
        return Score(predicted.log().mean().item())
