from __future__ import annotations

import pytest
import torch
from pytorch_lightning import Trainer

from conftest import TINY, tiny
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


def batch_of(n: int = 1, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8) for k in "AB"}


class _Step:
    """Run `training_step` outside a fit: attach a trainer so optimizers() and logging work."""

    def __init__(self, model):
        self.model = model
        self.trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                               enable_progress_bar=False, enable_model_summary=False)
        model.trainer = self.trainer
        self.trainer.strategy.connect(model)
        self.trainer.strategy._lightning_optimizers = []
        optimizers = model.configure_optimizers()
        self.trainer.strategy.optimizers = optimizers if isinstance(optimizers, list) else [optimizers]

    def __call__(self, batch):
        batch = self.model.on_after_batch_transfer(batch, 0)
        self.model.training_step(batch, 0)


@pytest.mark.parametrize("name", sorted(RECIPES))
class TestModelContract:
    def test_three_steps_change_every_generator_and_discriminator(self, name):
        model = tiny_model(name)  # three batches: one whole cycle of DiscoGAN's D, G, G alternation
        before = {k: v.clone() for k, v in model.state_dict().items()}
        step = _Step(model)
        logged = {}
        model.log = lambda key, value, **kw: logged.__setitem__(key, value)
        model.log_dict = lambda d, **kw: logged.update(d)
        for i in range(3):
            model.trainer.fit_loop.epoch_loop.batch_progress.total.ready = i + 1  # batches_done
            step(batch_of(model.cfg.data.batch_size, model.cfg.data.crop_size))
        for attr in model.net_specs:
            changed = [k for k in before if k.startswith(f"{attr}.") and not torch.equal(before[k], model.state_dict()[k])]
            assert changed, f"{attr} did not change"
        assert logged and all(torch.isfinite(torch.as_tensor(v)) for v in logged.values())
        assert any(k.startswith("g/") for k in logged) and any(k.startswith("d/") for k in logged)

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
    torch.manual_seed(0)
    cfg = from_dict(merge(TINY, {"losses": {"adversarial": objective}, "model": {"pool_size": -1}}))
    model = build_model(cfg)
    step = _Step(model)
    logged = {}
    model.log = lambda key, value, **kw: logged.__setitem__(key, value)
    model.log_dict = lambda d, **kw: logged.update(d)
    for seed in range(3):
        step(batch_of() | {"A": batch_of()["B"].roll(seed, dims=-1)})
        assert all(torch.isfinite(torch.as_tensor(v)) for v in logged.values()), logged
    wasserstein = objective.startswith("wgan")
    assert model.pool_a.size == (0 if wasserstein else 50)
    assert ("d/gp_a" in logged) == (objective == "wgan-gp")
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
        assert isinstance(model.optimizers()[1].optimizer, torch.optim.RMSprop)
