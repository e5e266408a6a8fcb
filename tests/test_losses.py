from __future__ import annotations

import math

import pytest
import torch

from translate.losses import ADVERSARIAL, RECONSTRUCTION, build_adversarial, build_reconstruction
from translate.losses.adversarial import real_fake_logits
from translate.nets import PatchDiscriminator


def test_lsgan_matches_the_published_formula():
    loss = build_adversarial("lsgan")
    real, fake = torch.tensor([0.5, 1.5]), torch.tensor([0.2, -0.4])
    d = loss.d_loss_from_logits(real, fake)
    expected = 0.5 * (((0.5 - 1) ** 2 + (1.5 - 1) ** 2) / 2 + (0.2**2 + 0.4**2) / 2)
    assert d.item() == pytest.approx(expected)
    assert loss.generator_loss(fake).item() == pytest.approx(((0.2 - 1) ** 2 + (-0.4 - 1) ** 2) / 2)


def test_vanilla_is_non_saturating_bce_on_logits():
    loss = build_adversarial("vanilla")
    x = torch.tensor([0.3])
    sp = lambda v: math.log1p(math.exp(v))  # softplus
    assert loss.generator_loss(x).item() == pytest.approx(sp(-0.3))  # -log sigmoid(x)
    assert loss.d_loss_from_logits(x, x).item() == pytest.approx(0.5 * (sp(-0.3) + sp(0.3)))
    # Non-saturating: the generator still gets a strong gradient when D confidently rejects fakes.
    x = torch.tensor([-10.0], requires_grad=True)
    loss.generator_loss(x).backward()
    assert x.grad.abs().item() > 0.99


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_every_objective_trains_a_discriminator_in_the_right_direction(name):
    torch.manual_seed(0)
    disc = PatchDiscriminator(ndf=4, n_layers=1)
    loss = build_adversarial(name)
    real, fake = torch.rand(2, 3, 16, 16), -torch.rand(2, 3, 16, 16)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        terms = loss.discriminator_loss(disc, real, fake, batched=True)
        assert torch.isfinite(terms["loss"])
        terms["loss"].backward()
        opt.step()
    with torch.no_grad():
        assert disc(real).mean() > disc(fake).mean()  # D learned to score real above fake
        assert loss.generator_loss(disc(fake)) > loss.generator_loss(disc(real))


def test_batched_discriminator_call_equals_separate_calls():
    torch.manual_seed(0)
    disc = PatchDiscriminator(ndf=4, n_layers=2)
    real, fake = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    joint = real_fake_logits(disc, real, fake, batched=True)
    apart = real_fake_logits(disc, real, fake, batched=False)
    for a, b in zip(joint, apart):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(RECONSTRUCTION))
def test_reconstruction_losses_are_zero_on_identity_and_positive_otherwise(name):
    loss = build_reconstruction(name)
    x = torch.randn(2, 3, 8, 8)
    assert loss(x, x).item() == 0.0
    assert loss(x + 0.5, x).item() > 0


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="choose from: lsgan, vanilla, wgan-gp, hinge, wgan-clip"):
        build_adversarial("wgan")
    with pytest.raises(ValueError, match="l1"):
        build_reconstruction("l3")


# ------------------------------------------------------------------ Wasserstein, hinge, feature matching

from translate.losses import feature_matching, gradient_penalty  # noqa: E402


def test_gradient_penalty_equals_the_analytic_value_for_a_linear_critic():
    torch.manual_seed(0)
    w = torch.randn(3, 8, 8)
    critic = lambda x: (x * w).flatten(1).sum(1, keepdim=True)  # noqa: E731  grad_x = w everywhere
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    expected = (w.norm() - 1) ** 2
    torch.testing.assert_close(gradient_penalty(critic, real, fake), expected)
    unit = lambda x: (x * w / w.norm()).flatten(1).sum(1, keepdim=True)  # noqa: E731  1-Lipschitz: no penalty
    assert gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_is_fp32_under_bf16_autocast_and_backpropagates():
    torch.manual_seed(0)
    disc = PatchDiscriminator(ndf=4, n_layers=2)
    real, fake = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)
    plain = gradient_penalty(disc, real, fake)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = gradient_penalty(disc, real, fake)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, plain)  # same interpolates, computed in fp32 either way
    mixed.backward()  # double backward reaches the critic's conv weights (biases cannot change grad_x D)
    weights = [p for p in disc.parameters() if p.dim() > 1]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in weights)


def test_wgan_gp_discriminator_loss_carries_its_penalty():
    loss = build_adversarial("wgan-gp", gp_weight=10.0)
    w = torch.full((3, 4, 4), 0.5)  # ||w|| = 0.5 * sqrt(48)
    critic = lambda x: (x * w).flatten(1).sum(1, keepdim=True)  # noqa: E731
    real, fake = torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    terms = loss.discriminator_loss(critic, real, fake)
    wdist = 0.5 * 48  # E[D(real)] - E[D(fake)]
    gp = (0.5 * 48**0.5 - 1) ** 2
    assert terms["wdist"].item() == pytest.approx(wdist)
    assert terms["gp"].item() == pytest.approx(gp, rel=1e-5)
    assert terms["loss"].item() == pytest.approx(-wdist + 10 * gp, rel=1e-5)


def test_hinge_and_wasserstein_values_on_known_logits():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.5])
    hinge = build_adversarial("hinge")
    assert hinge.d_loss_from_logits(real, fake).item() == pytest.approx((0 + 0.5 + 2) / 3 + (0 + 1 + 2.5) / 3)
    assert hinge.generator_loss(fake).item() == pytest.approx(-(-2.0 + 0.0 + 1.5) / 3)
    for name in ("wgan-gp", "wgan-clip"):
        wgan = build_adversarial(name)
        assert wgan.d_loss_from_logits(real, fake).item() == pytest.approx(fake.mean() - real.mean())
        assert wgan.generator_loss(fake).item() == pytest.approx(-fake.mean().item())


def test_weight_clipping_bounds_every_critic_parameter():
    torch.manual_seed(0)
    disc = PatchDiscriminator(ndf=4, n_layers=2)
    loss = build_adversarial("wgan-clip", clip_value=0.01)
    assert any(p.abs().max() > 0.01 for p in disc.parameters())
    loss.after_discriminator_step([disc])
    assert all(p.abs().max() <= 0.01 for p in disc.parameters())


def test_the_torch_free_objective_table_is_the_loss_registry():
    """recipes/objectives.py says, without torch, what each objective asks of a recipe; it must name exactly
    the registered losses, with the settings their constructors take."""
    import inspect

    from translate.losses import RECONSTRUCTION
    from translate.recipes.objectives import OBJECTIVES, RECONSTRUCTIONS

    assert set(OBJECTIVES) == set(ADVERSARIAL) and set(RECONSTRUCTIONS) == set(RECONSTRUCTION)
    for name, needs in OBJECTIVES.items():
        params = inspect.signature(ADVERSARIAL[name].__init__).parameters.values()
        takes = [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        assert sorted(takes) == sorted(needs.settings), name
    assert OBJECTIVES["hinge"].spectral_norm and OBJECTIVES["wgan-clip"].optimizer == "rmsprop"
    assert (OBJECTIVES["wgan-gp"].pool_size, OBJECTIVES["wgan-gp"].n_critic) == (0, 5)
    assert (OBJECTIVES["lsgan"].pool_size, OBJECTIVES["lsgan"].n_critic) == (50, 1)


def test_feature_matching_matches_batch_means():
    real = [torch.ones(4, 2, 3, 3), torch.zeros(4, 5)]
    fake = [torch.zeros(4, 2, 3, 3), torch.full((4, 5), 2.0)]
    assert feature_matching(real, fake).item() == pytest.approx(1.0 + 4.0)
    assert feature_matching(real, real).item() == 0.0
    with pytest.raises(ValueError):
        feature_matching(real, fake[:1])
