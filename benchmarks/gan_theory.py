"""The theory behind the adversarial objectives, shown with the same loss classes the models use.

1. Parallel lines (Arjovsky et al. 2017, Example 1): P0 = (0, Z), P_theta = (theta, Z), Z ~ U[0, 1]. The
   supports do not overlap, so JS(P0, P_theta) = log 2 for every theta != 0: a near-optimal discriminator
   leaves the minimax generator loss E[log(1 - D(theta, z))] flat in theta (vanishing gradient), while a
   WGAN-GP critic estimates W = |theta| and gives the generator a gradient of magnitude about 1.
2. Eight Gaussians on a ring (the toy of Metz et al. 2017 and Kim et al. 2017's DiscoGAN): the same small
   MLP generator and discriminator trained with each registered objective for the same budget; reports
   how many of the 8 modes the samples cover and the share of high-quality samples (within 3 sigma of a
   mode).

    python benchmarks/gan_theory.py            # both parts, about a minute on 2 CPU cores
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import Tensor, nn

from translate.recipes.objectives import OBJECTIVES
from translate.losses import ADVERSARIAL, build_adversarial, gradient_penalty


def mlp(inputs: int, hidden: int = 128, outputs: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, outputs))


# ----------------------------------------------------------------------------- 1. parallel lines


def lines(theta: Tensor, n: int) -> tuple[Tensor, Tensor]:
    z = torch.rand(n, 1)
    return torch.cat([torch.zeros(n, 1), z], 1), torch.cat([theta.expand(n, 1), z], 1)


def fit_discriminator(loss: nn.Module, theta: Tensor, steps: int, betas: tuple[float, float]) -> nn.Module:
    """A discriminator (or critic) trained towards optimality for P0 vs P_theta at a fixed theta."""
    disc = mlp(2, 64)
    opt = torch.optim.Adam(disc.parameters(), 1e-3, betas=betas)
    for _ in range(steps):
        real, fake = lines(theta, 256)
        d_loss = loss.discriminator_loss(disc, real, fake)["loss"]
        opt.zero_grad()
        d_loss.backward()
        opt.step()
    return disc


def generator_gradients(theta: float = 1.0, steps: int = 1000, seed: int = 0) -> dict[str, float]:
    """Train a discriminator / critic to (near) optimality at fixed theta; return d(G loss)/d theta."""
    torch.manual_seed(seed)
    out: dict[str, float] = {}
    t = torch.tensor([theta])
    # Vanilla GAN: D estimates the JS divergence; the generator's minimax loss is E[log(1 - D(fake))].
    vanilla = build_adversarial("vanilla")
    disc = fit_discriminator(vanilla, t, steps, betas=(0.9, 0.999))
    theta_v = t.clone().requires_grad_(True)
    real, fake = lines(theta_v, 4096)
    d_real, d_fake = torch.sigmoid(disc(real)), torch.sigmoid(disc(fake))
    minimax = torch.log1p(-d_fake.clamp(max=1 - 1e-12)).mean()  # E[log(1 - D(G))]
    (out["js_minimax_grad"],) = (g.abs().item() for g in torch.autograd.grad(minimax, theta_v, retain_graph=True))
    nonsat = vanilla.generator_loss(disc(fake))  # -E[log D(G)]
    (out["js_nonsaturating_grad"],) = (g.abs().item() for g in torch.autograd.grad(nonsat, theta_v))
    out["js_estimate"] = (math.log(2) + 0.5 * (torch.log(d_real).mean() + torch.log1p(-d_fake).mean())).item()
    # WGAN-GP: the critic estimates W(P0, P_theta) = |theta|; the generator's loss is -E[D(fake)].
    wgan = build_adversarial("wgan-gp")
    critic = fit_discriminator(wgan, t, steps, betas=(0.5, 0.9))
    theta_w = t.clone().requires_grad_(True)
    real, fake = lines(theta_w, 4096)
    (grad,) = torch.autograd.grad(wgan.generator_loss(critic(fake)), theta_w)
    out["wgan_gp_grad"] = grad.abs().item()
    with torch.no_grad():
        out["w_estimate"] = (critic(real).mean() - critic(fake).mean()).item()
    out["gp_after"] = gradient_penalty(critic, real.detach(), fake.detach()).item()
    return out


# ----------------------------------------------------------------------------- 2. eight Gaussians


MODES = torch.tensor([[2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)] for k in range(8)])
STD = 0.02


def ring(n: int) -> Tensor:
    return MODES[torch.randint(8, (n,))] + STD * torch.randn(n, 2)


def coverage(samples: Tensor, min_share: float = 0.01) -> tuple[int, float]:
    """Modes holding at least `min_share` of the samples as high-quality ones, and the high-quality share."""
    dist = torch.cdist(samples, MODES)  # [N,8]
    nearest, index = dist.min(1)
    good = nearest < 3 * STD
    counts = torch.bincount(index[good], minlength=8)
    return int((counts >= min_share * len(samples)).sum()), good.float().mean().item()


def train_ring(objective: str, steps: int = 3000, batch: int = 200, seed: int = 0) -> tuple[int, float, bool]:
    """Modes covered, high-quality share and whether every loss stayed finite, after `steps` G updates' budget."""
    torch.manual_seed(seed)
    loss = build_adversarial(objective)
    needs = OBJECTIVES[objective]  # what the recipe gives this objective (spectral norm, optimizer, cadence)
    gen, disc = mlp(2), mlp(2)
    gen[-1] = nn.Linear(128, 2)
    if needs.spectral_norm:
        for i, layer in enumerate(disc):
            if isinstance(layer, nn.Linear):
                disc[i] = nn.utils.parametrizations.spectral_norm(layer)
    if needs.optimizer == "rmsprop":
        opt_g, opt_d = (torch.optim.RMSprop(p, 5e-5) for p in (gen.parameters(), disc.parameters()))
    else:
        opt_g, opt_d = (torch.optim.Adam(p, 2e-4, betas=(0.5, 0.999)) for p in (gen.parameters(), disc.parameters()))
    finite = True
    for step in range(steps):  # same number of batches for every objective; G steps every n_critic-th
        real, fake = ring(batch), gen(torch.randn(batch, 2))
        d_loss = loss.discriminator_loss(disc, real, fake.detach())["loss"]
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        loss.after_discriminator_step([disc])
        if step % needs.n_critic == 0:
            g_loss = loss.generator_loss(disc(gen(torch.randn(batch, 2))))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            finite &= bool(torch.isfinite(g_loss))
        finite &= bool(torch.isfinite(d_loss))
    with torch.no_grad():
        modes, quality = coverage(gen(torch.randn(2000, 2)))
    return modes, quality, finite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="batches per objective in the ring toy")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("1. Parallel lines, theta = 1 (JS = log 2 = 0.693, W = 1), after 1000 discriminator steps:")
    g = generator_gradients()
    print(f"   JS estimate {g['js_estimate']:.3f}; |d/dtheta| minimax E[log(1-D)]: {g['js_minimax_grad']:.2e}; "
          f"non-saturating -E[log D]: {g['js_nonsaturating_grad']:.2e}")
    print(f"   W estimate {g['w_estimate']:.3f}; |d/dtheta| WGAN-GP generator loss: {g['wgan_gp_grad']:.3f}; "
          f"penalty after training {g['gp_after']:.4f}")
    print(f"2. Eight Gaussians on a ring, {args.steps} batches of 200 per objective (MLPs 128 wide):")
    for name in ADVERSARIAL:
        modes, quality, finite = train_ring(name, args.steps)
        print(f"   {name:10s} modes covered {modes}/8   high-quality samples {quality:6.1%}   "
              f"{'finite' if finite else 'NaN/inf seen'}")


if __name__ == "__main__":
    main()
