"""FusedNAdam against torch.optim.NAdam: same trajectory, interchangeable state."""

from __future__ import annotations

import copy

import pytest
import torch

from nerlab.training.optim import FusedNAdam

SHAPES = [(300, 7), (5,), (4, 3, 2), (1,)]


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in SHAPES]


def _run(opt_cls, steps: int, seed: int = 0, **kwargs) -> tuple[list[torch.Tensor], object]:
    params = _params(seed)
    opt = opt_cls(params, **kwargs)
    g = torch.Generator().manual_seed(seed + 1)
    for step in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g) * (1 + step % 3)
            if step % 4 == 3:  # rows the batch did not touch (an embedding's zero gradient)
                p.grad[: max(1, p.shape[0] // 2)] = 0
        opt.step()
    return [p.detach().clone() for p in params], opt


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.002},
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6},
        {"lr": 0.002, "weight_decay": 0.01},
        {"lr": 0.002, "weight_decay": 0.01, "decoupled_weight_decay": True},
        {"lr": 0.002, "momentum_decay": 0.01},
    ],
)
def test_matches_torch_nadam_over_many_steps(kwargs):
    ours, _ = _run(FusedNAdam, 60, **kwargs)
    ref, _ = _run(torch.optim.NAdam, 60, foreach=False, **kwargs)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)
    # and the parameters really moved (a no-op optimizer would fail the comparison anyway)
    assert not torch.equal(ours[0], _params(0)[0])


def test_state_is_interchangeable_with_torch_nadam():
    """A checkpoint of one optimizer resumes in the other and continues the same trajectory."""
    _, ours = _run(FusedNAdam, 10, lr=0.003)
    params = [p for group in ours.param_groups for p in group["params"]]
    state = ours.state_dict()
    assert set(state["state"][0]) == {"step", "mu_product", "exp_avg", "exp_avg_sq"}

    theirs = torch.optim.NAdam(params, lr=0.003, foreach=False)
    theirs.load_state_dict(copy.deepcopy(state))
    twin = [p.detach().clone().requires_grad_() for p in params]
    ours_again = FusedNAdam(twin, lr=0.003)
    ours_again.load_state_dict(copy.deepcopy(state))
    for _ in range(5):
        for p, q in zip(params, twin, strict=True):
            p.grad = torch.full_like(p, 0.5)
            q.grad = torch.full_like(q, 0.5)
        theirs.step()
        ours_again.step()
    for p, q in zip(params, twin, strict=True):
        torch.testing.assert_close(q.detach(), p.detach(), rtol=2e-5, atol=2e-6)


def test_tensors_the_kernel_cannot_take_use_torch_math():
    """float64 and non-contiguous parameters go through torch's own NAdam update."""
    base = torch.randn(6, 4, dtype=torch.float64)
    a = torch.nn.Parameter(base.clone())
    b = torch.nn.Parameter(base.clone())
    nc = torch.nn.Parameter(torch.randn(4, 6).t())  # not contiguous
    nc_ref = torch.nn.Parameter(nc.detach().clone())
    ours = FusedNAdam([a, nc], lr=0.01)
    ref = torch.optim.NAdam([b, nc_ref], lr=0.01, foreach=False)
    for _ in range(3):
        a.grad = torch.ones_like(a)
        b.grad = torch.ones_like(b)
        nc.grad = torch.ones_like(nc)
        nc_ref.grad = torch.ones_like(nc_ref)
        ours.step()
        ref.step()
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(nc, nc_ref)
    assert not torch.equal(a.detach(), base)


def test_invalid_arguments_are_refused():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="learning rate"):
        FusedNAdam(p, lr=-1)
    with pytest.raises(ValueError, match="betas"):
        FusedNAdam(p, betas=(1.0, 0.9))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ((), FusedNAdam),
        (("optimizer._target_=torch.optim.NAdam",), torch.optim.NAdam),
        (("optimizer=adam",), torch.optim.Adam),
        (("optimizer=adamw",), torch.optim.AdamW),
        (("optimizer=sgd",), torch.optim.SGD),
    ],
)
def test_training_on_cpu_uses_the_fused_nadam(tmp_path, tiny_corpus, overrides, expected):
    from conftest import compose_cfg

    from nerlab.training.run import build_data_and_model

    cfg = compose_cfg(tmp_path, tiny_corpus, *overrides)
    _, module, _ = build_data_and_model(cfg)
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    assert type(optimizer) is expected
    n_params = sum(1 for p in module.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == n_params


# ----------------------------------------------------------------------------- row-wise updates
def _sparse_rows(dense: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """The rows ``rows`` of ``dense`` as a sparse gradient, as nn.Embedding(sparse=True)
    gives it: uncoalesced, one entry per lookup (a repeated row is split into two halves)."""
    index = torch.tensor(rows + rows[:1], dtype=torch.long)
    values = dense[index].clone()
    values[0] /= 2
    values[-1] = values[0]
    return torch.sparse_coo_tensor(index.unsqueeze(0), values, dense.shape, check_invariants=True)


@pytest.mark.parametrize("decoupled", [False, True])
def test_row_updates_of_every_row_are_dense_nadam(decoupled):
    kwargs = {"lr": 0.01, "weight_decay": 0.01, "decoupled_weight_decay": decoupled}
    dense = torch.nn.Parameter(torch.randn(40, 6, generator=torch.Generator().manual_seed(1)))
    rowwise = torch.nn.Parameter(dense.detach().clone())
    opt_dense = FusedNAdam([dense], **kwargs)
    opt_rows = FusedNAdam([rowwise], **kwargs)
    g = torch.Generator().manual_seed(2)
    for _ in range(25):
        grad = torch.randn(40, 6, generator=g)
        dense.grad = grad.clone()
        rowwise.grad = _sparse_rows(grad, list(range(40)))
        opt_dense.step()
        opt_rows.step()
    torch.testing.assert_close(rowwise.detach(), dense.detach(), rtol=1e-5, atol=1e-6)
    rows_state, dense_state = opt_rows.state[rowwise], opt_dense.state[dense]
    torch.testing.assert_close(rows_state["exp_avg"], dense_state["exp_avg"])


@pytest.mark.parametrize("device_path", ["kernel", "torch"])
def test_row_updates_leave_untouched_rows_alone(device_path):
    """Lazy semantics: rows outside the gradient keep their values and moments; the touched
    rows get the update of the whole tensor's step count (the kernel and the torch path, which
    a GPU takes, agree)."""
    dtype = torch.float32 if device_path == "kernel" else torch.float64
    start = torch.randn(30, 4, generator=torch.Generator().manual_seed(3), dtype=dtype)
    p = torch.nn.Parameter(start.clone())
    ref = torch.nn.Parameter(start.clone())
    opt = FusedNAdam([p], lr=0.01)
    opt_ref = FusedNAdam([ref], lr=0.01)
    g = torch.Generator().manual_seed(4)
    touched = set()
    for step in range(12):
        rows = sorted(torch.randperm(30, generator=g)[:5].tolist())
        touched.update(rows)
        grad = torch.randn(30, 4, generator=g, dtype=dtype)
        p.grad = _sparse_rows(grad, rows)
        opt.step()
        # the reference: dense NAdam on a copy restricted to those rows, the rest restored
        keep_p = ref.detach().clone()
        keep_m = opt_ref.state[ref]["exp_avg"].clone() if step else torch.zeros_like(start)
        keep_v = opt_ref.state[ref]["exp_avg_sq"].clone() if step else torch.zeros_like(start)
        ref.grad = grad.clone()
        opt_ref.step()
        others = [r for r in range(30) if r not in rows]
        with torch.no_grad():
            ref[others] = keep_p[others]
        opt_ref.state[ref]["exp_avg"][others] = keep_m[others]
        opt_ref.state[ref]["exp_avg_sq"][others] = keep_v[others]
    untouched = [r for r in range(30) if r not in touched]
    assert untouched and torch.equal(p.detach()[untouched], start[untouched])
    assert opt.state[p]["exp_avg"][untouched].eq(0).all()
    torch.testing.assert_close(p.detach(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        opt.state[p]["exp_avg_sq"], opt_ref.state[ref]["exp_avg_sq"], rtol=1e-4, atol=1e-6
    )


def test_clip_grad_norm_takes_sparse_gradients():
    from nerlab.training.optim import clip_grad_norm

    g = torch.Generator().manual_seed(5)
    emb, lin = torch.randn(20, 3, generator=g), torch.randn(4, 3, generator=g)
    rows = [2, 7, 11]
    dense_grad = torch.zeros(20, 3)
    dense_grad[rows] = torch.randn(3, 3, generator=g)
    lin_grad = torch.randn(4, 3, generator=g)
    a, b = torch.nn.Parameter(emb.clone()), torch.nn.Parameter(lin.clone())
    a.grad, b.grad = dense_grad.clone(), lin_grad.clone()
    expected = torch.nn.utils.clip_grad_norm_([a, b], 0.5)
    c, d = torch.nn.Parameter(emb.clone()), torch.nn.Parameter(lin.clone())
    c.grad, d.grad = _sparse_rows(dense_grad, rows), lin_grad.clone()
    total = clip_grad_norm([c, d], 0.5)
    torch.testing.assert_close(total, expected)
    assert c.grad.is_sparse and c.grad.is_coalesced()
    torch.testing.assert_close(c.grad.to_dense(), a.grad)
    torch.testing.assert_close(d.grad, b.grad)
    assert expected > 0.5  # the clip happened
