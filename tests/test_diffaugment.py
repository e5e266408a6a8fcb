"""DiffAugment (train.augment): the operations, their gradients, one transform per discriminator call, the
gradient penalty on augmented images, and the models that refuse it."""

from __future__ import annotations

import itertools

import pytest
import torch

from conftest import batch_of, fit_batches, tiny
from translate.config import AUGMENT_OPS, ConfigError, from_dict
from translate.data.transforms import to_model_range
from translate.models import diffaugment
from translate.train import build_checked


def _draw(policy: str, n: int = 4, size: int = 16, seed: int = 0):
    return diffaugment.draw(policy, n, size, size, torch.Generator().manual_seed(seed))


def test_the_operations():
    assert set(diffaugment._APPLY) == set(AUGMENT_OPS)  # every operation a policy may name is implemented
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    ones, zeros = torch.ones(2, 1, 1, 1), torch.zeros(2, 1, 1, 1)
    assert torch.allclose(diffaugment._color(x, zeros, ones, ones), x)  # neutral colour parameters
    shifted = diffaugment._translation(x, torch.tensor([[2], [0]]), torch.tensor([[0], [-1]]))
    assert torch.equal(shifted[0, :, :-2], x[0, :, 2:]) and not shifted[0, :, -2:].any()  # zeros shifted in
    assert torch.equal(shifted[1, :, :, 1:], x[1, :, :, :-1]) and not shifted[1, :, :, 0].any()
    cut = diffaugment._cutout(x, torch.tensor([[8], [0]]), torch.tensor([[8], [0]]))
    assert (cut[0] == 0).all(dim=0).sum() == 8 * 8  # a square of half the sides, inside the image
    assert (cut[1] == 0).all(dim=0).sum() == 4 * 4  # centred on a corner: the quarter inside
    assert torch.equal(cut[0][:, :4], x[0][:, :4])
    # drawn ranges: brightness in [-0.5, 0.5), shifts up to 1/8 of the side
    (_, (b, s, c)), (_, (dy, dx)) = _draw("color,translation", n=500)
    assert -0.5 <= b.min() and b.max() < 0.5 and 0 <= s.min() and s.max() < 2 and 0.5 <= c.min() and c.max() < 1.5
    assert dy.abs().max() == 2 and dx.abs().max() == 2
    with pytest.raises(ConfigError, match="train.augment_policy"):
        from_dict({"train": {"augment": "diffaugment", "augment_policy": "color,rotate"}})


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_it_is_differentiable_so_gradients_reach_the_generator(policy: str):
    cfg = from_dict({**tiny(), "train": {**tiny()["train"], "augment": "diffaugment", "augment_policy": policy}})
    model = build_checked(cfg)
    batch = {k: to_model_range(v) for k, v in batch_of(2).items()}
    fake = model.g_ab(batch["A"])
    (seen,) = model.augmented(fake)
    assert seen.grad_fn is not None and not torch.equal(seen, fake)
    model.adversarial.generator_loss(model.d_b(seen)).backward()
    grads = [p.grad for p in model.g_ab.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_one_transform_for_the_real_and_the_fake_batch_of_a_call():
    cfg = from_dict({**tiny(), "train": {**tiny()["train"], "augment": "diffaugment"}})
    model = build_checked(cfg)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    a, b = model.augmented(x, x.clone())
    assert torch.equal(a, b) and not torch.equal(a, x)
    (c,) = model.augmented(x)
    assert not torch.equal(c, a)  # the next call draws anew


@pytest.mark.parametrize("name", ["cyclegan", "discogan", "cut"])
def test_every_discriminator_call_in_both_steps_sees_one_transform_on_real_and_fake(name: str, monkeypatch):
    """Spy on the operations during real training steps: each draw is applied to one batch in CycleGAN's
    generator step (fakes only), and to exactly two (real, fake) in every discriminator step and in
    DiscoGAN's generator step (feature matching compares alike-augmented real and fake features)."""
    d = tiny(name)
    d["train"] = {**d["train"], "augment": "diffaugment"}
    if name == "discogan":
        d["data"] = {**d["data"], "load_size": 64, "crop_size": 64}
    cfg = from_dict(d)
    model = build_checked(cfg)
    applied: list = []  # the transforms themselves (kept alive, so identities are not reused)
    original = diffaugment.apply
    monkeypatch.setattr(diffaugment, "apply", lambda x, t: (applied.append(t), original(x, t))[1])
    fit_batches(model, [batch_of(1, cfg.data.crop_size, seed=i) for i in range(3)])
    counts = [len(list(run)) for _, run in itertools.groupby(applied, key=id)]
    assert len({id(t) for t in applied}) == len(counts)  # no transform used again later
    if name == "cyclegan":  # per batch: G (d_b, d_a on fakes), then D (d_a, d_b on real and fake)
        assert counts == [1, 1, 2, 2] * 3
    elif name == "cut":  # per batch: D (real and fake), then G (the fake)
        assert counts == [2, 1] * 3
    else:  # batch 0 steps D, batches 1 and 2 step G: two discriminators each, real and fake each
        assert counts == [2, 2] * 3


def test_the_gradient_penalty_interpolates_between_the_augmented_images(monkeypatch):
    import translate.losses.wasserstein as wgan

    cfg = from_dict({**tiny(), "losses": {"adversarial": "wgan-gp"},
                     "train": {**tiny()["train"], "augment": "diffaugment"}})
    model = build_checked(cfg)
    drawn, seen = [], []
    original_draw, original_gp = diffaugment.draw, wgan.gradient_penalty
    monkeypatch.setattr(diffaugment, "draw", lambda *a, **k: (drawn.append(original_draw(*a, **k)), drawn[-1])[1])
    monkeypatch.setattr(wgan, "gradient_penalty",
                        lambda d, real, fake: (seen.append(real), original_gp(d, real, fake))[1])
    batch = batch_of(1)
    log = fit_batches(model, [batch])  # n_critic 5: the first batch steps the critics only
    real_a = to_model_range(batch["A"])
    assert len(seen) == 2 and torch.equal(seen[0], diffaugment.apply(real_a, drawn[0]))
    assert not torch.equal(seen[0], real_a)
    gp = log.metrics[0]["d/gp_a"]
    assert gp > 0 and torch.isfinite(torch.tensor(gp))


def test_genegan_refuses_it():
    with pytest.raises(ConfigError, match="GeneGAN trains without augmentation"):
        from_dict({**tiny("genegan"), "train": {**tiny()["train"], "augment": "diffaugment"}})
