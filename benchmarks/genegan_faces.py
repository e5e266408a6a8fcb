"""How well a GeneGAN checkpoint trained on the built-in faces adds and removes the glasses.

A domain classifier (translate.metrics, trained on the real trainA/trainB images) judges the swaps of the
paired test faces: testB/k given the glasses of testA/(k+1) should read as "with glasses" (A), and
testA/k with its object removed as "without" (B). The pair testA/k, testB/k differs only where the
glasses are, which gives the attribute region (grown by 2 px); outside it a swap should change nothing,
so the mean |output - input| there is reported, next to the same figure for the plain reconstruction
join(split(x)) (the autoencoder's own error, a floor for any swap). Values on a [0, 1] scale.

    python benchmarks/genegan_faces.py checkpoints/genegan-faces/last.ckpt [--root datasets] [--grid out.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image

from translate.data.builtin import ensure_builtin
from translate.data.datamodule import load_samples
from translate.data.io import list_images
from translate.data.transforms import to_model_range, to_uint8
from translate.metrics import share_classified_as, train_classifier
from translate.swap import load_genegan, swap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--root", default="datasets")
    parser.add_argument("--grid", type=Path, default=None, help="also write a grid of the first 8 swaps")
    args = parser.parse_args()
    g, size = load_genegan(args.checkpoint)
    root = ensure_builtin("faces", args.root)
    a, b = (load_samples(root / split, 10_000, size) for split in ("testA", "testB"))
    classifier = train_classifier(list_images(root / "trainA"), list_images(root / "trainB"), size=size)
    donors = to_model_range(a.roll(1, dims=0))  # another face's glasses
    with torch.no_grad():
        gained, _ = swap(g, donors, to_model_range(b))  # face k gets donor k's object (eval mode: per image)
        _, removed = swap(g, to_model_range(a), to_model_range(a))
        rec_a, rec_b = g(to_model_range(a)), g(to_model_range(b))
    gained, removed, rec_a, rec_b = (to_uint8(x) for x in (gained, removed, rec_a, rec_b))
    region = (a.int() - b.int()).abs().sum(1, keepdim=True) > 0
    outside = (F.max_pool2d(region.float(), 5, stride=1, padding=2) == 0).float()

    def change(out: torch.Tensor, ref: torch.Tensor) -> float:
        return float(((out.float() - ref.float()).abs() / 255 * outside).sum() / (outside.sum() * 3))

    print(f"{len(a)} test pairs at {size} px; classifier accuracy on real test faces: "
          f"A {share_classified_as(classifier, a, 'A'):.0%}, B {share_classified_as(classifier, b, 'B'):.0%}")
    print(f"  glasses added to B faces:   classified 'with'    {share_classified_as(classifier, gained, 'A'):.0%}"
          f"  (inputs: {share_classified_as(classifier, b, 'A'):.0%});  change outside the glasses "
          f"{change(gained, b):.4f}  (reconstruction {change(rec_b, b):.4f})")
    print(f"  glasses removed from A:     classified 'without' {share_classified_as(classifier, removed, 'B'):.0%}"
          f"  (inputs: {share_classified_as(classifier, a, 'B'):.0%});  change outside the glasses "
          f"{change(removed, a):.4f}  (reconstruction {change(rec_a, a):.4f})")
    if args.grid:
        n = 8
        rows = torch.cat([b[:n], a.roll(1, dims=0)[:n], gained[:n], a[:n], removed[:n]]).float() / 255
        save_image(make_grid(rows, nrow=n, padding=2), args.grid)
        print(f"grid (rows: B face, donor, B + donor's glasses, A face, A without): {args.grid}")


if __name__ == "__main__":
    main()
