"""NCE (Tran et al., ICCV 2019): negative conditional entropy of the target labels given the source's labels."""

from __future__ import annotations

from hubbench.rankers.base import Ranker, Score, classification_only, register
from hubbench.rankers.leep import source_probs


@register
class NCE(Ranker):
    """NCE: z = the source classifier's most likely class of each training image; the score is
    -H(Y | Z) of the empirical joint distribution of (y, z).

    Fixed by the paper: all of it (it assumes hard source labels). Chosen: z is the argmax of the
    source classifier on one centre view (`hubbench.features`), as the public code takes it from
    the pre-trained predictions; sources without an image classifier are n/a; classification tasks with
    two classes or more and at least as many training samples as classes only (`rankers.base.meaningful`).
    """

    name = "nce"
    description = "NCE: negative conditional entropy of target labels given the source classifier's labels"

    def applicable(self, hub, task):
        return classification_only(task, per_class=True)

    def score(self, features, targets):
        import torch

        z = source_probs(features).argmax(1)
        y = targets.long()
        joint = torch.zeros(int(y.max()) + 1, int(z.max()) + 1, dtype=torch.float64)
        joint.index_put_((y, z), torch.ones(len(y), dtype=torch.float64), accumulate=True)
        joint /= len(y)
        p_z = joint.sum(0, keepdim=True)
        conditional = joint / p_z.clamp_min(1e-300)  # P(y | z); columns of unseen z are zero
        entropy = -(joint * conditional.clamp_min(1e-300).log()).sum()
        return Score(-entropy.item())
