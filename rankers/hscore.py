"""H-score (Bao et al., ICIP 2019): how much of the features' variance the class-conditional means explain."""

from __future__ import annotations

from hubbench.rankers.base import Ranker, Score, classification_only, register


@register
class HScore(Ranker):
    """H-score: tr(cov(f)^-1 cov(E[f | y])), the features' covariance against that of their class means.

    Fixed by the paper: the formula (with the Moore-Penrose pseudo-inverse, as its code). Chosen:
    float64, population covariances (1/N), the pseudo-inverse's cutoff `rcond` relative to the largest
    singular value (a parameter; torch's default); no shrinkage (the regularised H-score of Ibrahim et
    al., 2022, is another ranker); classification tasks only.
    """

    name = "hscore"
    description = "H-score: trace of the inverse feature covariance times the class-mean covariance (classification)"
    rcond: float = 1e-15

    def applicable(self, hub, task):
        return classification_only(task)

    def score(self, features, targets):
        import torch

        f = features.features.double()
        f = f - f.mean(0)
        y = targets.long()
        cov_f = f.T @ f / len(f)
        means = torch.zeros(int(y.max()) + 1, f.shape[1], dtype=torch.float64).index_add_(0, y, f)
        means /= torch.bincount(y).clamp_min(1)[:, None].double()
        g = means[y]  # each sample's class mean: E[f | y]
        cov_g = g.T @ g / len(g)
        return Score(torch.trace(torch.linalg.pinv(cov_f, rtol=self.rcond, hermitian=True) @ cov_g).item())
