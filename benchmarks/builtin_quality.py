"""Translation quality on a built-in dataset, whose test images are paired by construction.

testA/k and testB/k differ only in the translated property (stripes, or circle vs square). Pixel L1
would punish correct stripes drawn at another phase, so two phase-free measures are compared inside the
shape's region (where A's shape differs from its background), each against "do nothing" (the input):
- colour: mean colour of the region vs the target's (stripes darken a solid shape's mean to ~0.625x);
- texture: high-frequency energy of the region, mean |x - 3x3 box blur(x)| (stripes have it, solids not).

    python benchmarks/builtin_quality.py checkpoints/stripes/last.ckpt [--root datasets]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from translate.checkpoint import load_checkpoint, load_net
from translate.data.builtin import ensure_builtin
from translate.data.datamodule import load_samples
from translate.data.transforms import to_model_range


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--root", default="datasets", help="where built-in datasets are generated")
    args = parser.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    data = ckpt["translate"]["config"]["data"]
    root = ensure_builtin(data["dataset"], args.root)
    size = data["crop_size"]
    a = to_model_range(load_samples(root / "testA", 10_000, size))
    b = to_model_range(load_samples(root / "testB", 10_000, size))
    with torch.no_grad():
        fake_b, fake_a = load_net(ckpt, "g_ab")(a), load_net(ckpt, "g_ba")(b)

    # The shape's region: pixels of testA far from its own corner colour (the shape never reaches a corner).
    mask = ((a - a[:, :, :1, :1]).abs().sum(1, keepdim=True) > 0.3).float()  # [N,1,H,W]

    def colour(x: torch.Tensor) -> torch.Tensor:  # [N,3] mean colour inside the region
        return (x * mask).sum((2, 3)) / mask.sum((2, 3))

    def texture(x: torch.Tensor) -> float:
        detail = (x - torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)).abs()
        return ((detail * mask).sum() / (mask.sum() * 3)).item() / 2

    def colour_error(x: torch.Tensor, target: torch.Tensor) -> float:  # on a [0, 1] scale
        return (colour(x) - colour(target)).abs().mean().item() / 2

    print(f"{data['dataset']}: {len(a)} test pairs at {size} px; region colour error (lower is better) and "
          "texture energy (closer to the target's is better), on a [0, 1] scale")
    print(f"  A->B  colour error: translated {colour_error(fake_b, b):.4f}  do-nothing {colour_error(a, b):.4f}"
          f"   texture: translated {texture(fake_b):.4f}  target {texture(b):.4f}  input {texture(a):.4f}")
    print(f"  B->A  colour error: translated {colour_error(fake_a, a):.4f}  do-nothing {colour_error(b, a):.4f}"
          f"   texture: translated {texture(fake_a):.4f}  target {texture(a):.4f}  input {texture(b):.4f}")


if __name__ == "__main__":
    main()
