"""``translate evaluate``: translate a dataset's test split and score it the way the field does.

Protocol (``report.json`` repeats it): every test image is resized (PIL bicubic, antialiased when shrinking,
aspect ratio not kept) to the checkpoint's training size ``data.crop_size`` x ``data.crop_size`` (256 for a
pretrained model or a classic generator file, which carry no config), as the classic ``test.py`` does
(load_size = crop_size at test time), translated, and rounded to 8 bits as if saved to PNG. The real
target-domain test images are resized the same way. FID and KID compare all translated images of a
direction with all real target test images (testA -> G_AB -> compared with testB), in the chosen feature
space (Inception pool3 by default; see metrics.py). KID uses 100 random subsets of min(1000, N, M).
A domain without a test folder uses the images training held out (``data.holdout``, same seed).
The dataset defaults to the one the checkpoint was trained on when that is a name (built-in or catalog),
looked up under ``--data-root`` (default ``datasets/``): a checkpoint's saved paths are never followed.
A pretrained model name scores the dataset it was trained on (see _to_score); a classic file or an export
needs the dataset given.

Built-in datasets add paired checks that need no pretrained weights: a domain classifier trained on the
real training images says whether each translation looks like the target domain, and the test pairs
(equal except for the translated property) say whether colour, position and background were kept.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.utils import make_grid, save_image

from translate.checkpoint import DIRECTIONS as NETS
from translate.checkpoint import (check_block, checkpoint_generator, is_translate_checkpoint, load_generator, one_set,
                                  read_torch_file, zoo_name)
from translate.config import Config, DataConfig, EvalConfig, from_dict
from translate.data.builtin import is_builtin
from translate.data.datamodule import UnpairedDataModule, load_samples
from translate.data.files import guard_outputs
from translate.data.io import atomic_write, list_images
from translate.data.transforms import to_model_range, to_uint8
from translate.data.unpaired import UnpairedDataset
from translate.errors import TranslateError
from translate.export import SUFFIX as EXPORT_SUFFIX
from translate.metrics import (build_extractor, extract, fid_kid, paired_checks,
                               share_classified_as, train_classifier)
from translate.nets.classifier import DomainClassifier

DIRECTIONS = {"AtoB": ("A", "B"), "BtoA": ("B", "A")}  # direction -> (source domain, target domain)
REPORT_NAME = "report.json"
GRID_IMAGES = 8


@dataclass
class EvalData:
    """Test images (uint8 [N,3,S,S]) per domain, where they came from, and the training files."""

    images: dict[str, torch.Tensor]
    sources: dict[str, str]
    skipped: dict[str, dict[str, str]]  # domain -> {unreadable file: why}
    train_files: tuple[list[Path], list[Path]]
    paired: bool  # test pairs equal except for the translated property (built-in datasets)
    test_files: list[Path] = field(default_factory=list)  # the files the test images were read from


def load_eval_data(data_cfg: Any, seed: int, size: int, max_images: int = 0) -> EvalData:
    """The test split of the dataset a config names: testA/testB, else the images training held out."""
    module = UnpairedDataModule(data_cfg, seed=seed)
    folders = module.domain_folders()
    train = UnpairedDataset(folders["trainA"], folders["trainB"], transform=None,
                            holdout_a=data_cfg.holdout if folders["testA"] is None else 0.0,
                            holdout_b=data_cfg.holdout if folders["testB"] is None else 0.0, seed=seed)
    images, sources, skipped, used = {}, {}, {}, []
    for domain, held in (("A", train.held_a), ("B", train.held_b)):
        folder = folders[f"test{domain}"]
        files = list_images(folder) if folder is not None else held
        if not files:
            raise TranslateError(f"domain {domain} has no test images and none were held out "
                                 f"(data.holdout={data_cfg.holdout}); add a test{domain}/ folder")
        if max_images:
            files = files[:max_images]
        used += files
        skipped[domain] = {}
        images[domain] = load_samples(files, len(files), size, skipped[domain])
        sources[domain] = str(folder) if folder is not None else f"{len(held)} held-out training images"
    paired = not data_cfg.dir_a and is_builtin(data_cfg.dataset)
    return EvalData(images, sources, skipped, (train.files_a, train.files_b), paired, used)


@torch.no_grad()
def translate_images(net: nn.Module, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """uint8 [N,3,H,W] -> translated uint8 [N,3,H,W] on the CPU, with `net` on its own device."""
    from translate.infer import translate_tensor
    from translate.precision import autocast_for

    device = next(net.parameters()).device
    out = []
    with autocast_for(device):
        for i in range(0, len(images), batch_size):
            x = to_model_range(images[i:i + batch_size].to(device))
            out.append(to_uint8(translate_tensor(net, x)).cpu())
    return torch.cat(out)


@dataclass
class Scorer:
    """Scores translations of fixed test images; the real images' features are extracted once."""

    data: EvalData
    extractor: nn.Module
    classifier: DomainClassifier | None = None
    real: dict[str, torch.Tensor] = field(default_factory=dict)
    do_nothing: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.real = {d: extract(self.extractor, imgs) for d, imgs in self.data.images.items()}
        for direction, (source, target) in DIRECTIONS.items():  # the untranslated inputs' scores, for scale
            scores = fid_kid(self.real[target], self.real[source])
            self.do_nothing[direction] = {k: scores[k] for k in ("fid", "kid_mean", "kid_std")}

    def score(self, net: nn.Module, direction: str) -> tuple[dict[str, Any], torch.Tensor]:
        """(metrics, translated uint8 images) for one direction's generator."""
        source, target = DIRECTIONS[direction]
        inputs = self.data.images[source]
        fake = translate_images(net, inputs)
        metrics: dict[str, Any] = fid_kid(self.real[target], extract(self.extractor, fake))
        metrics["do_nothing"] = self.do_nothing[direction]
        if self.classifier is not None:  # the share of each set the classifier puts in the target domain
            metrics["domain_classifier"] = {
                "translated": share_classified_as(self.classifier, fake, target),
                "do_nothing": share_classified_as(self.classifier, inputs, target),
                "real_targets": share_classified_as(self.classifier, self.data.images[target], target)}
            if self.data.paired:
                targets = self.data.images[target]
                metrics["paired"] = {"translated": paired_checks(inputs, fake, targets),
                                     "do_nothing": paired_checks(inputs, inputs, targets)}
        return metrics, fake


def build_scorer(data: EvalData, features: str, device: torch.device | str = "cpu", checks: bool = True) -> Scorer:
    """A Scorer with the `features` extractor; with `checks`, built-in datasets also get the domain
    classifier and the paired checks (the same classifier serves ``--features classifier``)."""
    extractor = None if features == "classifier" else build_extractor(features, device=device)  # fails first
    classifier = None
    if (checks and data.paired) or features == "classifier":
        classifier = train_classifier(*data.train_files, size=data.images["A"].shape[-1])
    extractor = extractor or build_extractor(features, classifier, device)
    return Scorer(data, extractor, classifier.to(device) if checks and classifier is not None else None)


def protocol(size: int, features: str) -> dict[str, Any]:
    return {
        "image_size": size, "resize": "PIL bicubic (antialiased when shrinking) to image_size x image_size, as the classic code; outputs rounded to uint8",
        "features": features,
        "feature_resize": "bilinear with antialias to 299 (torchmetrics >= 1.8)" if features == "inception" else "extractor's own",
        "real_images": "all target-domain test images", "kid_subsets": 100, "kid_subset_size": "min(1000, N, M)",
    }


def _save_grid(inputs: torch.Tensor, outputs: torch.Tensor, path: Path) -> None:
    n = min(GRID_IMAGES, len(inputs))
    grid = make_grid(torch.cat([inputs[:n], outputs[:n]]).float() / 255, nrow=n, padding=2)
    atomic_write(path, lambda tmp: save_image(grid, tmp, format="png"))


def _data_to_score(saved: DataConfig, dataset: str | None, root: str | None) -> DataConfig:
    """The data settings to evaluate on. Paths come from this command, never from the checkpoint: data.root
    is `root` or the default, and the checkpoint's own dataset is used only when it is a name (built-in or
    catalog), not a folder."""
    from translate.data.names import is_dataset_name

    root = root if root is not None else DataConfig().root
    if dataset is not None:
        return replace(saved, dataset=dataset, dir_a="", dir_b="", root=root)
    if not saved.dir_a and not saved.dataset:
        raise TranslateError("these weights do not say which dataset they were trained on: give it, translate "
                             "evaluate WEIGHTS DATASET (a dataset name, or a folder with testA/ testB/)")
    trained_on = f"{saved.dir_a} and {saved.dir_b}" if saved.dir_a else saved.dataset
    if saved.dir_a or not is_dataset_name(saved.dataset):
        raise TranslateError(f"the checkpoint was trained on the folder {trained_on}; evaluate does not follow "
                             "paths saved in a checkpoint: give the dataset, translate evaluate CHECKPOINT FOLDER "
                             "(a folder with testA/ testB/, or trainA/ trainB/ to score the held-out images)")
    return replace(saved, root=root)


def _to_score(checkpoint: str | Path, directions: tuple[str, ...], weights: str = "auto"):
    """(model name, {direction: generator}, saved data settings, seed, directions, weight files, "ema" or
    "raw" for a translate checkpoint's weights else None) for a
    translate checkpoint, a pretrained model name, a ``.safetensors`` export or a classic generator file.

    A pretrained name scores the dataset it was trained on (``dataset`` in the zoo), in that dataset's
    directions: horse2zebra for AtoB and zebra2horse for BtoA. A file with one generator scores one
    direction: its own (an export's saved direction, AtoB for a classic file) unless one is given; the other
    one is left out of "both"."""
    from translate import zoo

    both = len(directions) > 1
    name = zoo_name(checkpoint)
    if name is not None:
        one_set(checkpoint, weights)
        entry = zoo.ZOO[name]
        own = entry.dataset_direction or "AtoB"
        chosen = {d: name if d == own else entry.partner for d in directions}
        missing = [d for d, model in chosen.items() if model is None]
        if missing and not (both and len(missing) < len(directions)):
            raise TranslateError(f"the pretrained {name} translates one way only ({entry.direction}): "
                                 f"evaluate it with --direction {own}")
        # each model in its own way (AtoB), downloaded (and checked) before scoring
        found = {d: load_generator(model) for d, model in chosen.items() if model is not None}
        return ("cyclegan", {d: g.net for d, g in found.items()}, DataConfig(dataset=entry.dataset or ""),
                Config().train.seed, tuple(found), [g.path for g in found.values()], None)
    path = Path(checkpoint)
    loaded = None if path.suffix == EXPORT_SUFFIX else read_torch_file(path)  # read once for both directions
    if is_translate_checkpoint(loaded):
        if both:  # a one-way model (CUT) is scored in the direction it has
            nets = check_block(loaded, path=path)["nets"]
            directions = tuple(d for d in directions if NETS[d] in nets) or directions
        found = {d: checkpoint_generator(loaded, d, path=path, weights=weights) for d in directions}  # fails early
        first = found[directions[0]]
        cfg = from_dict(first.config)
        return (first.model, {d: g.net for d, g in found.items()}, cfg.data, cfg.train.seed, directions, [path],
                first.weights)
    one = load_generator(path, None, weights=weights)  # an export's own direction, AtoB for a classic file
    chosen = (one.direction,) if both else directions
    return one.model, {chosen[0]: one.net}, DataConfig(dataset=""), Config().train.seed, chosen, [path], None


def evaluate(checkpoint: str | Path, dataset: str | None = None, directions: tuple[str, ...] = ("AtoB", "BtoA"),
             features: str | None = None, out_dir: str | Path | None = None, max_images: int | None = None,
             root: str | None = None, device: str | None = None, weights: str = "auto") -> dict[str, Any]:
    """Score `checkpoint` on `dataset` (default: the one it was trained on); writes ``report.json`` and one
    ``grid_<direction>.png`` (inputs above, translations below) into `out_dir` and returns the report.
    `features` and `max_images` default to the config's (:class:`EvalConfig`), as training's evaluations.
    `weights` chooses a translate checkpoint's moving average ("auto": when it has one, "ema") or "raw" weights;
    the report says which (``weights``), so both can be scored from one checkpoint."""
    started = time.perf_counter()
    features = EvalConfig().features if features is None else features
    max_images = EvalConfig().max_images if max_images is None else max_images
    for direction in directions:
        if direction not in DIRECTIONS:
            raise TranslateError(f"--direction must be AtoB, BtoA or both, got '{direction}'")
    path = Path(checkpoint)
    model, nets, saved_data, seed, directions, files, used = _to_score(checkpoint, directions, weights)
    data_cfg = _data_to_score(saved_data, dataset, root)
    size = data_cfg.crop_size
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    data = load_eval_data(data_cfg, seed, size, max_images)
    default_out = Path("eval") / str(checkpoint) if zoo_name(checkpoint) else path.parent / "eval" / path.stem
    if weights == "raw":  # beside the default (moving-average) report of the same checkpoint
        default_out = default_out.with_name(default_out.name + "-raw")
    out = Path(out_dir) if out_dir is not None else default_out
    guard_outputs([out / REPORT_NAME, *(out / f"grid_{d}.png" for d in directions)], [*files, *data.test_files])
    scorer = build_scorer(data, features, dev)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint), "model": model, "weights": used,
        "dataset": data_cfg.dir_a and f"{data_cfg.dir_a} | {data_cfg.dir_b}" or data_cfg.dataset,
        "protocol": protocol(size, features), "directions": {},
    }
    for direction in directions:
        source, target = DIRECTIONS[direction]
        net = nets[direction].to(dev)
        metrics, fake = scorer.score(net, direction)
        grid = out / f"grid_{direction}.png"
        _save_grid(data.images[source], fake, grid)
        report["directions"][direction] = {
            "inputs": data.sources[source], "targets": data.sources[target],
            "n_inputs": len(data.images[source]), "n_targets": len(data.images[target]),
            "skipped": {**data.skipped[source], **data.skipped[target]},  # unreadable files, and why
            **metrics, "grid": str(grid)}
    report["seconds"] = round(time.perf_counter() - started, 2)
    text = json.dumps(report, indent=2)
    atomic_write(out / REPORT_NAME, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    report["path"] = str(out / REPORT_NAME)
    return report
