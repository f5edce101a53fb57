"""The error of the best affine field on PolyMax: what a model that learns no switching scores.

``∇F`` of PolyMax is piecewise linear (one of three linear maps, whichever quadratic is largest),
so the least-squares affine map ``x ↦ Bx + c`` fitted on many uniform points is the floor a model
reaches by learning the average linear map alone. Usage::

    .venv/bin/python benchmarks/polymax_affine_floor.py [DIM ...]   # default 32 256

prints, per dimension, the error in dB (10·log10 mean ‖f − ∇F‖² on 20,000 fresh test points).
"""

from __future__ import annotations

import math
import sys

import torch

from hamgrad.systems import get_system


def affine_floor_db(dim: int, n_fit: int = 200_000, n_test: int = 20_000, seed: int = 1) -> float:
    """Error in dB of the least-squares affine fit to PolyMax's field in ``dim`` dimensions."""
    field = get_system("polymax", dim=dim)
    gen = torch.Generator().manual_seed(seed)
    x = field.sample(n_fit, gen).double()
    xt = field.sample(n_test, gen).double()
    ones = torch.ones(n_fit, 1, dtype=torch.float64)
    coef = torch.linalg.lstsq(torch.cat([x, ones], 1), field.grad(x).double()).solution
    pred = torch.cat([xt, torch.ones(n_test, 1, dtype=torch.float64)], 1) @ coef
    return 10.0 * math.log10(float(((pred - field.grad(xt).double()) ** 2).sum(1).mean()))


if __name__ == "__main__":
    for d in [int(a) for a in sys.argv[1:]] or [32, 256]:
        print(f"polymax d={d}: best affine field {affine_floor_db(d):.2f} dB", flush=True)
