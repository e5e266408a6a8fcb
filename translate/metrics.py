"""Evaluation metrics: feature extractors, FID and KID (torchmetrics), a domain classifier, and the paired
checks of the built-in datasets. Images come in as uint8 [N,3,H,W]; nothing here reads files except the
classifier's training images and the Inception weights.

Feature extractors (``--features``), each an ``nn.Module`` mapping uint8 images to [N, D] float features:
- ``inception``: the FID standard, Inception-v3 pool3 (2048-d) with the TF-ported weights of
  torch-fidelity, through torchmetrics (bilinear resize to 299 with antialias). The weights are fetched
  once into torch's hub cache (``<TORCH_HOME>/hub/checkpoints``, where torch-fidelity also looks) by our
  resumable downloader and loaded with ``weights_only=True`` (the libraries' own loaders unpickle).
- ``classifier``: pooled features of a small A-vs-B classifier trained on this dataset's training images;
  offline and free of pretrained weights, but its scores compare only runs on the same dataset.
- ``pixels``: 8x8 colour thumbnails (192-d); a weight-free sanity baseline.
- ``package.module:factory``: a callable returning an ``nn.Module`` that maps float [N,3,H,W] in [0, 1]
  to [N, D] features.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from translate.data.transforms import to_model_range
from translate.errors import TranslateError
from translate.nets.classifier import DomainClassifier

log = logging.getLogger(__name__)

INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")  # torch-fidelity's URL_INCEPTION_V3
INCEPTION_URL_ENV = "TRANSLATE_INCEPTION_URL"  # a mirror (or a local server in tests)
CLASSIFIER_SIZE = 64
FEATURES = ("inception", "classifier", "pixels")


class InceptionFeatures(nn.Module):
    """Inception-v3 pool3 features (2048-d), exactly torchmetrics' FID extractor."""

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        # Without feature_extractor_weights_path torch-fidelity downloads the weights itself; with one it
        # reads them with torch.load(weights_only=False), which unpickles. So it never sees a file: it gets
        # bytes we serialize here from our state dict, which was read with weights_only=True (plain tensors),
        # so what it unpickles is our own tensors and nothing else, and it never touches the network.
        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                      feature_extractor_weights_path=_in_memory(state_dict), antialias=True)
        self.num_features = 2048

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).reshape(len(images), -1)


def _in_memory(state_dict: dict[str, torch.Tensor]) -> io.BytesIO:
    """`state_dict` serialized into a buffer that torch.load reads as it reads a path."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return buffer


class PixelFeatures(nn.Module):
    """8x8 area-averaged thumbnails in [-1, 1], flattened (192-d)."""

    num_features = 192

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(to_model_range(images), 8).flatten(1)


class ClassifierFeatures(nn.Module):
    """The pooled features of a trained :class:`DomainClassifier`, standardized with the training images'
    per-feature mean and std (raw features are unbounded, and KID's cubic kernel assumes order-1 values)."""

    def __init__(self, classifier: DomainClassifier) -> None:
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        c = self.classifier
        return (c.features(classifier_input(images)) - c.feature_mean) / c.feature_std


class UserFeatures(nn.Module):
    """A user's module, fed float [0, 1] images."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(images.float() / 255).reshape(len(images), -1)


def _inception_weights() -> dict[str, torch.Tensor]:
    """The Inception weights from torch's hub cache, downloaded there first if missing."""
    from translate.data.download import DownloadError, download

    url = os.environ.get(INCEPTION_URL_ENV) or INCEPTION_URL
    name = INCEPTION_URL.rsplit("/", 1)[1]
    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not path.is_file():
        log.info("downloading the Inception weights for FID (%s, 92 MB) to %s", url, path)
        try:
            download(url, path, retries=2)
        except DownloadError as exc:
            raise TranslateError(
                f"cannot fetch the Inception weights for FID/KID: {exc}\n"
                f"  Offline? On a machine with internet, download {INCEPTION_URL}\n"
                f"  and copy it to {path} (or set TORCH_HOME; torch-fidelity uses the same file).\n"
                "  Or score without pretrained weights: --features classifier (or pixels, or "
                "package.module:factory).") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    expected = name.rsplit("-", 1)[1].split(".")[0]  # torch hub's convention: a sha256 prefix in the name
    if not digest.startswith(expected):
        raise TranslateError(f"{path}: not the Inception weights (sha256 {digest[:8]}..., expected {expected}...); "
                             "delete it and run again")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is the same user-facing problem
        raise TranslateError(f"{path}: unreadable Inception weights ({exc}); delete it and run again") from None


def _user_module(spec: str) -> nn.Module:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise TranslateError(f"--features {spec}: cannot import it ({exc})") from None
    module = factory()
    if not isinstance(module, nn.Module):
        raise TranslateError(f"--features {spec}: the factory returned {type(module).__name__}, not an nn.Module")
    return UserFeatures(module)


def build_extractor(spec: str, classifier: DomainClassifier | None = None,
                    device: torch.device | str = "cpu") -> nn.Module:
    """The extractor named by `spec` (see the module docstring), in eval mode on `device`; ``classifier``
    needs the trained `classifier`."""
    if spec == "inception":
        extractor: nn.Module = InceptionFeatures(_inception_weights())
    elif spec == "pixels":
        extractor = PixelFeatures()
    elif spec == "classifier":
        if classifier is None:
            raise TranslateError("--features classifier needs a classifier trained on the dataset")
        extractor = ClassifierFeatures(classifier)
    elif ":" in spec:
        extractor = _user_module(spec)
    else:
        raise TranslateError(f"--features: unknown extractor '{spec}' (choose from {', '.join(FEATURES)} or "
                             "package.module:factory)")
    return extractor.to(device).eval().requires_grad_(False)


@torch.no_grad()
def extract(extractor: nn.Module, images: torch.Tensor, batch_size: int = 50) -> torch.Tensor:
    """Features [N, D] (float64, CPU) of uint8 images [N,3,H,W], in batches."""
    device = next(extractor.parameters(), torch.empty(0)).device
    parts = [extractor(images[i:i + batch_size].to(device)).double().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(parts) if parts else torch.empty(0, 0, dtype=torch.float64)


class _Given(nn.Module):
    """Features computed beforehand go through torchmetrics unchanged (each image is extracted once)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def fid_kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, seed: int = 0) -> dict[str, float]:
    """FID and KID (mean, std over `subsets` random subsets) between two feature sets [N, D], [M, D].

    KID's subset size is min(1000, N, M): torchmetrics' default of 1000 fails on small test sets."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    if len(real) < 2 or len(fake) < 2:
        raise TranslateError(f"FID/KID need at least 2 images per side (got {len(real)} real, {len(fake)} translated)")
    subset_size = min(1000, len(real), len(fake))
    # the features are complete in this process: no gathering across ranks (rank 0 scores alone under DDP)
    fid = FrechetInceptionDistance(feature=_Given(real.shape[1]), sync_on_compute=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KID's note that it keeps every feature in memory
        kid = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=subsets, subset_size=subset_size,
                                      sync_on_compute=False)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):  # KID draws its subsets from the global RNG
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std),
            "kid_subset_size": subset_size}


# ----------------------------------------------------------------------------- domain classifier


def classifier_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N,3,H,W] -> float [-1, 1] at the classifier's size."""
    x = to_model_range(images)
    if x.shape[-2:] != (CLASSIFIER_SIZE, CLASSIFIER_SIZE):
        x = F.interpolate(x, size=(CLASSIFIER_SIZE, CLASSIFIER_SIZE), mode="bilinear", antialias=True,
                          align_corners=False)
    return x


def train_classifier(files_a: list[Path], files_b: list[Path], size: int = CLASSIFIER_SIZE, steps: int = 200,
                     batch_size: int = 32, seed: int = 0, limit: int = 2000) -> DomainClassifier:
    """A :class:`DomainClassifier` trained on (at most `limit` per domain) real images first resized to
    `size` (the evaluation size), with flips. Deterministic for a seed; the global RNG is left as it was."""
    from translate.data.datamodule import load_samples

    a, b = (load_samples(files[:limit], limit, size) for files in (files_a, files_b))  # as evaluation resizes
    if not len(a) or not len(b):
        raise TranslateError("classifier: a domain has no readable training images")
    log.info("training a domain classifier on %d + %d training images (%d steps)", len(a), len(b), steps)
    images = torch.cat([a, b])
    labels = torch.cat([torch.zeros(len(a)), torch.ones(len(b))])
    weights = torch.cat([torch.full((len(a),), 0.5 / len(a)), torch.full((len(b),), 0.5 / len(b))])  # balanced
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        classifier = DomainClassifier()
        optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
        for _ in range(steps):
            idx = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
            x = classifier_input(images[idx])
            flip = torch.rand(len(idx), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.binary_cross_entropy_with_logits(classifier(x), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    classifier.eval().requires_grad_(False)
    with torch.no_grad():
        features = torch.cat([classifier.features(classifier_input(images[i:i + 256]))
                              for i in range(0, len(images), 256)])
    classifier.feature_mean.copy_(features.mean(0))
    classifier.feature_std.copy_(features.std(0).clamp(min=1e-6))
    return classifier


@torch.no_grad()
def share_classified_as(classifier: DomainClassifier, images: torch.Tensor, domain: str) -> float:
    """The share of uint8 `images` that `classifier` puts in `domain` ("A" or "B")."""
    logits = torch.cat([classifier(classifier_input(images[i:i + 256])) for i in range(0, len(images), 256)])
    return float(((logits > 0) == (domain == "B")).float().mean())


# ----------------------------------------------------------------------------- paired checks (built-in data)


def paired_checks(inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """For test pairs that differ only in the translated property (the built-in datasets), on uint8
    [N,3,H,W]: did the translation keep the shape's colour, position and the background?

    The shape's region is where the input or the target differs from its own corner colour (the shape
    never reaches a corner). On a [0, 1] scale: ``colour_error``, |mean colour of the region| output vs
    target; ``background_error``, mean |output - target| outside the region (grown by 2 px, so edges
    do not count). ``position_error_px``: distance between the centroids of the output's and the target's
    regions."""
    x, y, t = (v.float() / 255 for v in (inputs, outputs, targets))

    def region(img: torch.Tensor) -> torch.Tensor:  # [N,1,H,W] bool
        return (img - img[:, :, :1, :1]).abs().sum(1, keepdim=True) > 0.3

    shape = region(x) | region(t)
    grown = F.max_pool2d(shape.float(), 5, stride=1, padding=2) > 0
    inside, outside = shape.float(), (~grown).float()

    def mean_colour(img: torch.Tensor) -> torch.Tensor:
        return (img * inside).sum((2, 3)) / inside.sum((2, 3)).clamp(min=1)

    def centroid(mask: torch.Tensor) -> torch.Tensor:  # [N,2] (row, col)
        h, w = mask.shape[-2:]
        rows = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
        cols = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
        area = mask.sum((1, 2, 3)).clamp(min=1)
        return torch.stack([(mask * rows).sum((1, 2, 3)) / area, (mask * cols).sum((1, 2, 3)) / area], 1)

    # the output's region against the target's background colour (the output's corner may be wrong)
    out_region = ((y - t[:, :, :1, :1]).abs().sum(1, keepdim=True) > 0.3).float()
    return {
        "colour_error": float((mean_colour(y) - mean_colour(t)).abs().mean()),
        "background_error": float(((y - t).abs() * outside).sum() / (outside.sum() * 3).clamp(min=1)),
        "position_error_px": float((centroid(out_region) - centroid(region(t).float())).norm(dim=1).mean()),
    }

