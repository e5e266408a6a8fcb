"""What PatchNCE needs from a generator: its encoder's layers, and the projection heads (CUT's ``netF``).

Paper: Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation", ECCV 2020, Sec. 3.2.
Reference: taesungp/contrastive-unpaired-translation, models/networks.py (``ResnetGenerator.forward`` with
``layers`` and ``encode_only``; ``PatchSampleF`` with ``use_mlp``, the "mlp_sample" default).

- :func:`encoder_layers`: the generator's modules as the flat list that layer indices count. For the ResNet
  it is ``model`` itself, as in the reference (layer 0 is the reflection-padded input; 4, 8 the convs of the
  two downsamplings, 12 and 16 the outputs of the 1st and 5th residual block with antialiasing on). The
  reference has no layer list for its U-Net; ours is the U-Net's contracting path: 0 the input, 1 the first
  down-conv, then per level a LeakyReLU, a down-conv and (but for the innermost) a norm. Modules run as in
  the generator's own forward, inplace activations included (as in the reference, a stored feature followed
  by an inplace ReLU is seen rectified).
- :class:`PatchProjector`: per layer a Linear-ReLU-Linear head (256 units), applied to `num_patches`
  positions sampled once per layer and shared by all images of the batch (and by queries and keys), then L2
  normalised with the reference's ``x / (|x| + 1e-7)``.

Deviation: the reference creates the heads on the first forward pass, when it sees the channel counts; ours
are built with the model from the counts the generator's architecture gives (:func:`feature_channels`), so
the state dict, the optimizer and DDP see them from the start. Their initial weights are drawn the same way
(the model's init), not from the data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from translate.nets.resnet import ResnetGenerator
from translate.nets.unet import UnetGenerator, UnetSkipConnectionBlock


def encoder_layers(net: nn.Module) -> list[nn.Module]:
    """The flat module list that PatchNCE layer indices count (see the module docstring)."""
    if isinstance(net, ResnetGenerator):
        return list(net.model)
    if isinstance(net, UnetGenerator):
        layers: list[nn.Module] = [nn.Identity()]
        block: nn.Module = net.model
        while True:
            mods = list(block.model)
            inner = [i for i, m in enumerate(mods) if isinstance(m, UnetSkipConnectionBlock)]
            if not inner:  # the innermost level: LeakyReLU, down-conv (the rest is the way up)
                return layers + mods[:2]
            layers += mods[: inner[0]]
            block = mods[inner[0]]
    raise ValueError(f"PatchNCE needs a resnet or unet generator, not {type(net).__name__}")


def encode(layers: Sequence[nn.Module], x: Tensor, ids: Sequence[int]) -> list[Tensor]:
    """The outputs of ``layers[i]`` for i in `ids` (increasing), running the layers only as far as the last."""
    feats = []
    for i, layer in enumerate(layers[: ids[-1] + 1]):
        x = layer(x)
        if i in ids:
            feats.append(x)
    return feats


@torch.no_grad()
def feature_channels(net: nn.Module, ids: Sequence[int], in_channels: int = 3) -> list[int]:
    """Channels of the features :func:`encode` returns, from one pass over a blank image of the smallest size
    the generator takes (at least 32 px); the generator's mode is restored."""
    layers = encoder_layers(net)
    if ids[-1] >= len(layers):
        raise ValueError(f"layer {ids[-1]} does not exist: the {type(net).__name__} has layers 0 to {len(layers) - 1}")
    side = max(32, int(getattr(net, "size_multiple", 1)))
    was_training = net.training
    net.eval()
    try:
        param = next(net.parameters())
        x = torch.zeros(1, in_channels, side, side, dtype=param.dtype, device=param.device)
        return [f.shape[1] for f in encode(layers, x, ids)]
    finally:
        net.train(was_training)


class PatchProjector(nn.Module):
    """CUT's ``netF``: a two-layer MLP head per feature layer over sampled patch positions."""

    def __init__(self, channels: Sequence[int], units: int = 256) -> None:
        super().__init__()
        if units < 1 or min(channels, default=0) < 1:
            raise ValueError("units and every layer's channels must be positive")
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(c, units), nn.ReLU(), nn.Linear(units, units))
                                  for c in channels)

    def forward(self, feats: Sequence[Tensor], num_patches: int, patch_ids: Sequence[Tensor] | None = None,
                generator: torch.Generator | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """Per layer the projections [N*P, units] of P = min(num_patches, H*W) positions, drawn at random
        (``torch.randperm``, from the CPU `generator` when one is given) unless `patch_ids` (from an earlier
        call) are given; and the positions."""
        out, ids = [], []
        for i, (feat, mlp) in enumerate(zip(feats, self.mlps)):
            flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # [N,H*W,C]
            if patch_ids is not None:
                chosen = patch_ids[i]
            elif generator is None:
                chosen = torch.randperm(flat.shape[1], device=feat.device)[: min(num_patches, flat.shape[1])]
            else:
                chosen = torch.randperm(flat.shape[1], generator=generator)[: min(num_patches, flat.shape[1])]
                if feat.device.type == "cuda":  # pinned, so the copy does not wait for the queued kernels
                    chosen = chosen.pin_memory().to(feat.device, non_blocking=True)
                else:
                    chosen = chosen.to(feat.device)
            x = mlp(flat[:, chosen].flatten(0, 1))  # [N*P,units]
            out.append(x / (x.norm(p=2, dim=1, keepdim=True) + 1e-7))
            ids.append(chosen)
        return out, ids
