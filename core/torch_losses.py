"""The project's losses in torch, reduced as ``core/losses.py`` reduces them: summed over the
outputs, averaged over the batch, or with class weights the weighted mean ``sum(w[y_i] l_i) /
sum(w[y_i])`` (PyTorch's own for ``F.cross_entropy(weight=w)``). The torch engines' only loss.

torch is the caller's: nothing here imports it.
"""
from __future__ import annotations

from netbuilder.core.errors import TrainingError


def torch_loss(F, kind: str, pred, labels, weights=None):
    """The loss ``kind`` of ``pred`` (N, K) (logits when fused with the last activation) against
    integer ``labels``; ``weights`` a tensor of one weight a class (2 for one output) or None."""
    n, k = pred.shape[0], pred.shape[1]
    if k == 1:  # one output: the label itself is the target (Network.targets)
        target = labels.to(pred.dtype).reshape(-1, 1)
    elif kind != "cross_entropy":
        target = F.one_hot(labels, k).to(pred.dtype)
    if weights is None:
        if kind == "cross_entropy":
            if k == 1:
                return -(target * F.log_softmax(pred, dim=1)).sum() / n
            return F.cross_entropy(pred, labels)
        if kind == "binary_cross_entropy":
            return F.binary_cross_entropy_with_logits(pred, target, reduction="sum") / n
        if kind == "squared_error":
            return 0.5 * ((pred - target) ** 2).sum() / n
        raise TrainingError(f"the torch engine does not know the loss {kind!r}")
    weights = weights.to(pred.dtype)  # no copy when it is already
    sample = weights[labels]  # each image's class weight
    if kind == "cross_entropy" and k > 1:
        return F.cross_entropy(pred, labels, weight=weights)
    if kind == "cross_entropy":
        per = -(target * F.log_softmax(pred, dim=1)).sum(dim=1)
    elif kind == "binary_cross_entropy":
        per = F.binary_cross_entropy_with_logits(pred, target, reduction="none").sum(dim=1)
    elif kind == "squared_error":
        per = 0.5 * ((pred - target) ** 2).sum(dim=1)
    else:
        raise TrainingError(f"the torch engine does not know the loss {kind!r}")
    return (per * sample).sum() / sample.sum()
