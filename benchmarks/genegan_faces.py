"""How well a GeneGAN checkpoint trained on the built-in faces adds and removes the glasses.

A domain classifier (translate.metrics, trained on the real trainA/trainB images) judges the swaps of the
paired test faces: testB/k given the glasses of testA/(k+1) should read as "with glasses" (A), and
testA/k with its object removed as "without" (B). The pair testA/k, testB/k differs only where the
glasses are, which gives the attribute region (grown by 2 px); outside it a swap should change nothing,
so the mean |output - input| there is reported, next to the same figure for the plain reconstruction
join(split(x)) (the autoencoder's own error, the floor of a raw swap). Each figure is given for both
``--blend`` settings: ``none`` (the paper's raw decoder output) and ``footprint`` (swap.py: the edit
blended into the input only where it changes something). Distance to the ideal (mean |output - ideal|
over the whole image): removing testA/k's glasses should give its twin testB/k exactly; testB/k given its
twin testA/k's own glasses should give testA/k. Values on a [0, 1] scale.

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
from translate.swap import blend_into, load_genegan, swap


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
    xa, xb = to_model_range(a), to_model_range(b)
    with torch.no_grad():
        raw = {"gained": swap(g, donors, xb)[0],  # face k gets donor k's object (eval mode: per image)
               "removed": swap(g, xa, xa)[1],
               "twin": swap(g, xa, xb)[0]}  # B face k gets its own twin's glasses: the ideal output is A face k
        rec_a, rec_b = g(xa), g(xb)
    outputs = {"none": raw, "footprint": {"gained": blend_into(xb, raw["gained"], rec_b),
                                          "removed": blend_into(xa, raw["removed"], rec_a),
                                          "twin": blend_into(xb, raw["twin"], rec_b)}}
    outputs = {k: {name: to_uint8(x) for name, x in v.items()} for k, v in outputs.items()}
    rec_a, rec_b = to_uint8(rec_a), to_uint8(rec_b)
    region = (a.int() - b.int()).abs().sum(1, keepdim=True) > 0
    outside = (F.max_pool2d(region.float(), 5, stride=1, padding=2) == 0).float()

    def change(out: torch.Tensor, ref: torch.Tensor) -> float:
        return float(((out.float() - ref.float()).abs() / 255 * outside).sum() / (outside.sum() * 3))

    def distance(out: torch.Tensor, ideal: torch.Tensor) -> float:  # the whole image, [0, 1] scale
        return float((out.float() - ideal.float()).abs().mean() / 255)

    print(f"{len(a)} test pairs at {size} px; classifier accuracy on real test faces: "
          f"A {share_classified_as(classifier, a, 'A'):.0%}, B {share_classified_as(classifier, b, 'B'):.0%}; "
          f"reconstruction change outside the glasses: A {change(rec_a, a):.4f}, B {change(rec_b, b):.4f}")
    print("  --blend    | added: 'with' | outside | to ideal (twin's glasses) | removed: 'without' | outside | to ideal (twin)")
    for blend, out in outputs.items():
        print(f"  {blend:10s} | {share_classified_as(classifier, out['gained'], 'A'):13.0%} | "
              f"{change(out['gained'], b):.4f}  | {distance(out['twin'], a):25.4f} | "
              f"{share_classified_as(classifier, out['removed'], 'B'):18.0%} | {change(out['removed'], a):.4f}  | "
              f"{distance(out['removed'], b):.4f}")
    print(f"  inputs     | {share_classified_as(classifier, b, 'A'):13.0%} |         | {distance(b, a):25.4f} | "
          f"{share_classified_as(classifier, a, 'B'):18.0%} |         | {distance(a, b):.4f}   (do nothing)")
    gained, removed = outputs["footprint"]["gained"], outputs["footprint"]["removed"]
    if args.grid:
        n = 8
        rows = torch.cat([b[:n], a.roll(1, dims=0)[:n], gained[:n], a[:n], removed[:n]]).float() / 255
        save_image(make_grid(rows, nrow=n, padding=2), args.grid)
        print(f"grid (rows: B face, donor, B + donor's glasses, A face, A without): {args.grid}")


if __name__ == "__main__":
    main()
