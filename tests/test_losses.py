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
    with pytest.raises(ValueError, match="choose from: lsgan, vanilla"):
        build_adversarial("wgan")
    with pytest.raises(ValueError, match="l1"):
        build_reconstruction("l3")
