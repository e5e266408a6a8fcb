from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY, batch_of, fit_batches, tiny
from translate.config import from_dict, merge, resolve
from translate.models import build_model
from translate.recipes import RECIPES
from translate.callbacks import linear_decay
from translate.models.base import run_batched
from translate.models.image_pool import ImagePool
from translate.nets import ResnetGenerator


# ------------------------------------------------------------------ image pool

def test_pool_fills_then_returns_history_half_the_time():
    pool = ImagePool(4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: new images come straight back
    assert len(pool.images) == 4
    new = torch.arange(100.0, 1100.0).view(1000, 1, 1, 1)
    out = pool.query(new)
    from_history = out != new
    assert 400 < from_history.sum().item() < 600  # p = 0.5 of returning a stored image
    assert len(pool.images) == 4  # never grows past its size
    # A returned history image is one stored earlier: an original or an earlier new image.
    earlier = {float(v) for v in range(4)} | set(new.flatten().tolist())
    assert all(v in earlier and (v < 100 or v < new.flatten()[i]) for i, v in enumerate(out.flatten().tolist())
               if from_history.flatten()[i])


def test_pool_size_zero_is_pass_through_and_state_roundtrips():
    assert torch.equal(ImagePool(0).query(torch.ones(2, 1, 1, 1)), torch.ones(2, 1, 1, 1))
    a = ImagePool(3, seed=1)
    a.query(torch.randn(5, 3, 4, 4))
    b = ImagePool(3, seed=99)
    b.load_state_dict(a.state_dict())
    x = torch.randn(6, 3, 4, 4)
    assert torch.equal(a.query(x), b.query(x))  # same images and same generator state


# ------------------------------------------------------------------ schedule

@pytest.mark.parametrize("epoch, factor", [(0, 1.0), (99, 1.0), (100, 1 - 1 / 101), (150, 1 - 51 / 101),
                                           (199, 1 / 101), (200, 0.0), (260, 0.0)])
def test_linear_decay_at_chosen_epochs(epoch, factor):
    assert linear_decay(epoch, 100, 100) == pytest.approx(factor)


def test_run_batched_equals_separate_calls_and_falls_back_for_batch_norm():
    torch.manual_seed(0)
    x, y = torch.randn(1, 3, 16, 16), torch.randn(2, 3, 16, 16)
    for norm in ("instance", "batch"):
        net = ResnetGenerator(ngf=4, n_blocks=1, norm=norm).train()
        joint = run_batched(net, x, y)
        for a, b in zip(joint, (net(x), net(y))):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # Concatenating would change batch-norm statistics, which is why run_batched must not do it:
    assert not torch.allclose(net(torch.cat([x, y]))[:1], net(x), atol=1e-3)


# ------------------------------------------------------------------ contract: every registered model

# What each model needs beyond TINY: DiscoGAN's discriminator works at 64 px and has batch norm.
TINY_FOR = {"discogan": {"data": {"load_size": 64, "crop_size": 64, "batch_size": 2}},
            # no critic burst, so three batches are D, G, D; widths that the genegan nets take
            "genegan": {"losses": {"critic_burst": 0}, "data": {"load_size": 32, "batch_size": 2}}}


def tiny_model(name: str):
    """The model's recipe (config.resolve) with TINY's widths and sizes."""
    torch.manual_seed(0)
    return build_model(resolve(merge(tiny(name), TINY_FOR.get(name, {}))))


@pytest.mark.parametrize("name", sorted(RECIPES))
class TestModelContract:
    def test_three_steps_change_every_generator_and_discriminator(self, name):
        model = tiny_model(name)  # three batches: one whole cycle of DiscoGAN's D, G, G alternation
        before = {k: v.clone() for k, v in model.state_dict().items()}
        log = fit_batches(model, [batch_of(model.cfg.data.batch_size, model.cfg.data.crop_size, seed=i)
                                  for i in range(3)])
        for attr in model.net_specs:
            changed = [k for k in before if k.startswith(f"{attr}.") and not torch.equal(before[k], model.state_dict()[k])]
            assert changed, f"{attr} did not change"
        assert all(math.isfinite(v) for metrics in log.metrics for v in metrics.values()), log.metrics
        assert any(k.startswith("g/") for k in log.keys) and any(k.startswith("d/") for k in log.keys)

    def test_sample_grid_rows_have_input_shape(self, name):
        model = tiny_model(name).eval()
        real = torch.rand(2, 3, model.cfg.data.crop_size, model.cfg.data.crop_size) * 2 - 1
        rows = model.sample_grid(real, real)
        assert rows and all(r.shape == real.shape and r.min() >= -1 and r.max() <= 1 for r in rows)

    def test_checkpoint_block_holds_config_and_rebuildable_nets(self, name):
        from translate.checkpoint import load_net

        model = tiny_model(name)
        ckpt = {"state_dict": model.state_dict()}
        model.on_save_checkpoint(ckpt)
        assert ckpt["translate"]["model"] == name and from_dict(ckpt["translate"]["config"]) == model.cfg
        x = torch.rand(1, 3, model.cfg.data.crop_size, model.cfg.data.crop_size)
        for attr in model.net_specs:
            net = load_net(ckpt, attr)
            torch.testing.assert_close(net(x), getattr(model, attr).eval()(x))


def test_cyclegan_terms_follow_the_paper_weights():
    model = tiny_model("cyclegan")
    batch = model.on_after_batch_transfer(batch_of(), 0)
    terms, fake_a, fake_b = model.generator_terms(batch["A"], batch["B"])
    assert set(terms) == {"adv_ab", "adv_ba", "cycle_a", "cycle_b", "idt_ab", "idt_ba"}
    with torch.no_grad():
        rec_a = model.g_ba(model.g_ab(batch["A"]))
        idt = model.g_ab(batch["B"])
    torch.testing.assert_close(terms["cycle_a"], 10 * (rec_a - batch["A"]).abs().mean(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(terms["idt_ab"], 5 * (idt - batch["B"]).abs().mean(), rtol=1e-4, atol=1e-5)
    no_idt = build_model(from_dict(merge(TINY, {"losses": {"lambda_identity": 0}})))
    assert "idt_ab" not in no_idt.generator_terms(batch["A"], batch["B"])[0]


# ------------------------------------------------------------------ every adversarial objective in CycleGAN

from translate.losses import ADVERSARIAL  # noqa: E402


@pytest.mark.parametrize("objective", sorted(ADVERSARIAL))
def test_cyclegan_trains_with_every_objective(objective):
    """A real (tiny) fit: the discriminators step on every batch, the generators on every n_critic-th only
    (5 for the WGAN critics, 1 otherwise), every logged term stays finite."""
    torch.manual_seed(0)
    cfg = from_dict(merge(TINY, {"losses": {"adversarial": objective}, "model": {"pool_size": -1}}))
    model = build_model(cfg)
    wasserstein = objective.startswith("wgan")
    n_critic = 5 if wasserstein else 1
    assert model.n_critic == n_critic
    n = 2 * n_critic + 1  # two whole critic cycles and the first batch of a third
    log = fit_batches(model, [batch_of(seed=i) for i in range(n)])
    g_steps, d_steps = zip(*log.steps)
    assert list(d_steps) == list(range(1, n + 1))
    assert list(g_steps) == [(i + 1) // n_critic for i in range(n)]  # batches n_critic, 2 n_critic, ...
    assert all(math.isfinite(v) for metrics in log.metrics for v in metrics.values()), log.metrics
    assert model.pool_a.size == (0 if wasserstein else 50)
    assert ("d/gp_a" in log.keys) == (objective == "wgan-gp")
    convs = [m for m in model.d_a.modules() if isinstance(m, torch.nn.Conv2d)]
    if objective == "hinge":  # spectral norm turned on by the objective: each conv's sigma ~ 1
        for conv in convs:
            assert torch.nn.utils.parametrize.is_parametrized(conv, "weight")
            sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
            assert sigma.item() == pytest.approx(1.0, abs=0.1)
    else:
        assert not any(torch.nn.utils.parametrize.is_parametrized(c, "weight") for c in convs)
    if objective == "wgan-clip":
        assert all(p.abs().max() <= cfg.losses.clip_value for p in model.d_b.parameters())
        assert isinstance(log.trainer.optimizers[1], torch.optim.RMSprop)
