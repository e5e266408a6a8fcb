"""How well a GeneGAN checkpoint trained on the built-in faces adds and removes the glasses.

A domain classifier (translate.metrics, trained on the real trainA/trainB images) judges the swaps of
twin faces: B face k given the glasses of A face k+1 should read as "with glasses" (A), and A face k with
its object removed as "without" (B). Twins A/k, B/k differ only where the glasses are, which gives the
attribute region (grown by 2 px); outside it a swap should change nothing, so the mean |output - input|
there is reported, next to the same figure for the plain reconstruction join(split(x)) (the
autoencoder's own error, the floor of a raw swap). Each figure is given for both ``--blend`` settings:
``none`` (the paper's raw decoder output) and ``footprint`` (swap.py: the edit blended into the input
only where it changes something). Distance to the ideal (mean |output - ideal| over the whole image):
removing A face k's glasses should give its twin B face k exactly; B face k given its twin's own glasses
should give A face k. Values on a [0, 1] scale.

``--split test`` (the default) uses the dataset's 64 paired test faces. ``--split validation`` draws 128
other twin pairs from their own seed (in neither the training nor the test split), on which ``--sweep``
compares footprint constants (swap.Footprint): the defaults were chosen there, so the test figures are not
fitted to the test faces.

    python benchmarks/genegan_faces.py checkpoints/genegan-faces/last.ckpt [--split validation] [--sweep]
        [--root datasets] [--grid out.png]
"""

from __future__ import annotations

import argparse
import itertools
import random
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image

from translate.data.builtin import BUILTIN_DATASETS, _seed, ensure_builtin, save_png
from translate.data.datamodule import load_samples
from translate.data.io import list_images
from translate.data.transforms import to_model_range, to_uint8
from translate.metrics import share_classified_as, train_classifier
from translate.swap import FOOTPRINT, Footprint, blend_into, load_genegan, swap

VALIDATION_PAIRS = 128


def twins(split: str, root: Path, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [n,3,size,size] (with glasses, without): the test pairs, or validation twins drawn afresh."""
    if split == "test":
        return tuple(load_samples(root / s, 10_000, size) for s in ("testA", "testB"))
    spec = BUILTIN_DATASETS["faces"]
    rng = random.Random(_seed("faces", "validation"))
    params = [spec.sample(rng, spec.image_size) for _ in range(VALIDATION_PAIRS)]
    with tempfile.TemporaryDirectory() as tmp:
        for domain in "AB":
            (Path(tmp) / domain).mkdir()
            for k, p in enumerate(params):
                save_png(spec.render(domain, p, spec.image_size), Path(tmp) / domain / f"{k:05d}.png")
        return tuple(load_samples(Path(tmp) / d, 10_000, size) for d in "AB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--root", default="datasets")
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    parser.add_argument("--sweep", action="store_true", help="compare footprint constants (use --split validation)")
    parser.add_argument("--grid", type=Path, default=None, help="also write a grid of the first 8 swaps")
    args = parser.parse_args()
    g, size = load_genegan(args.checkpoint)
    root = ensure_builtin("faces", args.root)
    a, b = twins(args.split, root, size)
    classifier = train_classifier(list_images(root / "trainA"), list_images(root / "trainB"), size=size)
    xa, xb = to_model_range(a), to_model_range(b)
    with torch.no_grad():
        raw = {"gained": swap(g, to_model_range(a.roll(1, dims=0)), xb)[0],  # face k gets face k+1's object
               "removed": swap(g, xa, xa)[1],
               "twin": swap(g, xa, xb)[0]}  # B face k gets its own twin's glasses: the ideal output is A face k
        rec = {"A": g(xa), "B": g(xb)}

    def blended(shape: Footprint) -> dict[str, torch.Tensor]:
        return {"gained": blend_into(xb, raw["gained"], rec["B"], shape),
                "removed": blend_into(xa, raw["removed"], rec["A"], shape),
                "twin": blend_into(xb, raw["twin"], rec["B"], shape)}

    region = (a.int() - b.int()).abs().sum(1, keepdim=True) > 0
    outside = (F.max_pool2d(region.float(), 5, stride=1, padding=2) == 0).float()

    def change(out: torch.Tensor, ref: torch.Tensor) -> float:
        return float(((out.float() - ref.float()).abs() / 255 * outside).sum() / (outside.sum() * 3))

    def distance(out: torch.Tensor, ideal: torch.Tensor) -> float:  # the whole image, [0, 1] scale
        return float((out.float() - ideal.float()).abs().mean() / 255)

    def figures(out: dict[str, torch.Tensor]) -> tuple[float, ...]:
        out = {name: to_uint8(x) for name, x in out.items()}
        return (share_classified_as(classifier, out["gained"], "A"), change(out["gained"], b),
                distance(out["twin"], a), share_classified_as(classifier, out["removed"], "B"),
                change(out["removed"], a), distance(out["removed"], b))

    header = "added: 'with' | outside | to ideal (twin's glasses) | removed: 'without' | outside | to ideal (twin)"

    def row(name: str, f: tuple[float, ...]) -> str:
        return (f"  {name:22s} | {f[0]:13.0%} | {f[1]:.4f}  | {f[2]:25.4f} | {f[3]:18.0%} | {f[4]:.4f}  | "
                f"{f[5]:.4f}")

    print(f"{len(a)} {args.split} twin pairs at {size} px; classifier accuracy on them: "
          f"A {share_classified_as(classifier, a, 'A'):.0%}, B {share_classified_as(classifier, b, 'B'):.0%}; "
          f"reconstruction change outside the glasses: A {change(to_uint8(rec['A']), a):.4f}, "
          f"B {change(to_uint8(rec['B']), b):.4f}")
    if args.sweep:
        print(f"  {'floor full dilate/feather':22s} | {header} | mean to ideal")
        grid = itertools.product((0.05, 0.1, 0.15, 0.2), (0.25, 0.4, 0.6), (1 / 64, 1 / 32, 1 / 16))
        results = []
        for floor, full, grow in grid:
            shape = Footprint(floor=floor, full=full, dilate=grow, feather=grow)
            results.append((shape, figures(blended(shape))))
        for shape, f in sorted(results, key=lambda r: r[1][2] + r[1][5]):
            name = f"{shape.floor:.2f} {shape.full:.2f} 1/{round(1 / shape.dilate)}"
            print(row(name, f) + f" | {(f[2] + f[5]) / 2:.4f}" + ("   (default)" if shape == FOOTPRINT else ""))
        print(row("none (raw)", figures(raw)))
        return
    print(f"  {'--blend':22s} | {header}")
    out = {"none": raw, "footprint": blended(FOOTPRINT)}
    for blend, images in out.items():
        print(row(blend, figures(images)))
    print(f"  {'inputs':22s} | {share_classified_as(classifier, b, 'A'):13.0%} |         | {distance(b, a):25.4f} | "
          f"{share_classified_as(classifier, a, 'B'):18.0%} |         | {distance(a, b):.4f}   (do nothing)")
    if args.grid:
        n = 8
        gained, removed = to_uint8(out["footprint"]["gained"]), to_uint8(out["footprint"]["removed"])
        rows = torch.cat([b[:n], a.roll(1, dims=0)[:n], gained[:n], a[:n], removed[:n]]).float() / 255
        save_image(make_grid(rows, nrow=n, padding=2), args.grid)


if __name__ == "__main__":
    main()
