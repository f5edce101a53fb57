"""hamgrad.adam: the fused Adam/AdamW where torch has it, the same update as the default one."""

from __future__ import annotations

import pytest
import torch

from hamgrad.adam import adam
from hamgrad.models import build_model

F64 = torch.float64


def _train(make_optimiser, steps=100):
    model = build_model("gradnet-c", 3, width=9, seed=0, dtype=F64)
    opt = make_optimiser(model.parameters())
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        (model(x) ** 2).mean().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    ("decoupled", "weight_decay", "reference"),
    [
        (False, 0.0, torch.optim.Adam),
        (False, 1e-3, torch.optim.Adam),
        (True, 1e-2, torch.optim.AdamW),
    ],
)
def test_same_update_as_the_default_implementation(decoupled, weight_decay, reference):
    ours = _train(
        lambda ps: adam(
            ps, lr=1e-2, betas=(0.8, 0.99), weight_decay=weight_decay, decoupled=decoupled
        )
    )
    peer = _train(lambda ps: reference(ps, lr=1e-2, betas=(0.8, 0.99), weight_decay=weight_decay))
    start = _train(lambda ps: reference(ps, lr=0.0))
    moved = max(float((a - b).abs().max()) for a, b in zip(ours, start, strict=True))
    assert moved > 1e-3  # the comparison below is about a real trajectory of updates
    for a, b in zip(ours, peer, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_fused_where_torch_has_it():
    opt = adam([torch.zeros(3, requires_grad=True)], lr=1e-3)
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    assert opt.defaults.get("fused") is ((major, minor) >= (2, 4))


def test_falls_back_where_fused_is_refused(monkeypatch):
    class NoFused(torch.optim.Adam):
        def __init__(self, params, fused=None, **kwargs):
            if fused:
                raise RuntimeError("`fused=True` is not supported here")
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", NoFused)
    opt = adam([torch.zeros(3, requires_grad=True)], lr=1e-3)
    assert isinstance(opt, NoFused) and not opt.defaults.get("fused")


def test_bad_arguments_still_raise():
    with pytest.raises(ValueError, match="learning rate"):
        adam([torch.zeros(3, requires_grad=True)], lr=-1.0)
