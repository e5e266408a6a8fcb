"""PatchNCE (Park, Efros, Zhang, Zhu: "Contrastive Learning for Unpaired Image-to-Image Translation", ECCV
2020, Sec. 3.2, Eq. 2-5), matching the authors' models/patchnce.py and ``calculate_NCE_loss`` in
models/cut_model.py (taesungp/contrastive-unpaired-translation).

For each image, its P sampled patches: query q_i (the output's feature), positive k_i (the input's feature at
the same place), negatives k_j (j != i, the input's other patches of the same image). Per patch
    -log( exp(q_i.k_i / tau) / (exp(q_i.k_i / tau) + sum_{j != i} exp(q_i.k_j / tau) + exp(-10 / tau)) ),
the last term being the authors' masked self-similarity (they fill the diagonal with -10 before dividing by
tau, leaving it in the row). Mean over patches and images, then mean over layers. Keys are detached. The
negatives never come from other images of the batch (their ``nce_includes_all_negatives_from_minibatch``
off, the CUT and FastCUT setting).

Deviation: computed in fp32 with autocast off, so bf16/fp16 runs divide by tau = 0.07 in full precision.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

MASKED = -10.0  # the authors' value for the (meaningless) self-similarity, before the temperature


def patch_nce(q: Tensor, k: Tensor, batch_size: int, tau: float) -> Tensor:
    """Mean PatchNCE loss of one layer; `q` and `k` are [batch_size * P, D] L2-normalised projections (images
    major, patches minor, the same patch positions in both)."""
    with torch.autocast(q.device.type, enabled=False):
        q = q.float().view(batch_size, -1, q.shape[-1])  # [B,P,D]
        k = k.detach().float().view(batch_size, -1, k.shape[-1])
        n = q.shape[1]
        positives = (q * k).sum(-1, keepdim=True)  # [B,P,1]
        negatives = torch.bmm(q, k.transpose(1, 2))  # [B,P,P]
        negatives = negatives.masked_fill(torch.eye(n, dtype=torch.bool, device=q.device), MASKED)
        logits = torch.cat([positives, negatives], dim=2).flatten(0, 1) / tau  # [B*P,1+P]; the positive first
        return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=q.device))


def patch_nce_layers(qs: Sequence[Tensor], ks: Sequence[Tensor], batch_size: int, tau: float) -> Tensor:
    """The mean over layers of each layer's :func:`patch_nce` (each layer weighs the same, whatever its P)."""
    if len(qs) != len(ks) or not qs:
        raise ValueError(f"{len(qs)} query vs {len(ks)} key layers")
    return torch.stack([patch_nce(q, k, batch_size, tau) for q, k in zip(qs, ks)]).mean()
