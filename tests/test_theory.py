"""The seeds' theory, checked quickly with benchmarks/gan_theory.py (the full run prints the figures)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import gan_theory  # noqa: E402


def test_parallel_lines_js_gradient_vanishes_while_wgan_gp_gives_about_one():
    g = gan_theory.generator_gradients(theta=1.0, steps=300)
    assert g["js_estimate"] == pytest.approx(math.log(2), abs=0.03)  # the supports are disjoint: JS = log 2
    assert g["js_minimax_grad"] < 0.05  # the minimax generator loss is flat in theta
    assert g["w_estimate"] == pytest.approx(1.0, abs=0.25)  # W(P0, P_theta) = |theta|
    assert g["wgan_gp_grad"] == pytest.approx(1.0, abs=0.3)  # the critic's slope: gradient of magnitude ~1
    assert g["wgan_gp_grad"] > 20 * g["js_minimax_grad"]


def test_mode_coverage_metric():
    torch.manual_seed(0)
    assert gan_theory.coverage(gan_theory.ring(4000)) == (8, pytest.approx(1.0, abs=0.01))
    one_mode = gan_theory.MODES[:1].repeat(500, 1)
    assert gan_theory.coverage(one_mode) == (1, 1.0)
    between = (gan_theory.MODES[:1] + gan_theory.MODES[1:2]) / 2  # between two modes: covers nothing
    assert gan_theory.coverage(between.repeat(100, 1)) == (0, 0.0)
