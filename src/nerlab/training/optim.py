"""`FusedNAdam`: ``torch.optim.NAdam`` in one pass over each tensor, for CPU training.

The default model spends most of its parameters in the word embedding (24,644 x 50 on CoNLL-2003).
``torch.optim.NAdam`` has no fused CPU kernel in torch 2.13; its ``foreach`` path walks every
tensor about ten times per step (lerp, mul, addcmul, div, sqrt, add, two addcdivs...): 5.3 ms a
step against 1.6 ms here (measured on 1 thread), about 2 s of a 10.7 s epoch. Here a numba
kernel reads and writes each element once; ``make bench`` reports both (part ``optim``).

The update is NAdam exactly as ``torch.optim.NAdam`` computes it (Dozat 2016, with its
``momentum_decay`` schedule and optional L2 or decoupled weight decay),
and the optimizer state uses torch's names and layout (``step``, ``mu_product``, ``exp_avg``,
``exp_avg_sq``), so a checkpoint written with one optimizer resumes with the other.
``tests/test_optim.py`` checks both against each other over many steps.

Tensors the kernel cannot take (not CPU, not contiguous float32) go through
``torch.optim.NAdam``'s own functional update, so the class is safe anywhere (on a GPU every
dense tensor takes that path). It is the default optimizer (``conf/optimizer/nadam.yaml``).

**Row-wise updates** (``sparse_rows=True``, the default): the training module then asks the
word embedding for sparse gradients (``nn.Embedding(sparse=True)``: the rows a batch looks up),
and a tensor with a sparse gradient is updated in those rows only, with the semantics of
``torch.optim.SparseAdam`` ("lazy" Adam): the moments and values of rows the batch does not
touch stay as they are (dense NAdam would decay their moments and keep moving them by their
momentum), the touched rows get NAdam's update with the step count and momentum schedule of
the whole tensor. A step then costs what the batch touches, not the vocabulary. When every row
is touched the update is exactly dense NAdam's (tested). :func:`clip_grad_norm` clips such
gradients by the norm of the touched rows.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit


# error_model="numpy": no ZeroDivisionError check per division, which keeps the loop vectorized
@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _nadam_kernel(param, grad, exp_avg, exp_avg_sq, one_minus_beta1, beta2, inv_bc2, eps,
                  weight_decay, coef_grad, coef_avg):  # fmt: skip
    """One NAdam step over flat float32 arrays, in place (the math of torch.optim.NAdam)."""
    one_minus_beta2 = np.float32(1.0) - beta2
    for i in range(param.size):
        g = grad[i]
        if weight_decay != 0.0:
            g = g + weight_decay * param[i]
        m = exp_avg[i] + one_minus_beta1 * (g - exp_avg[i])
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        denom = math.sqrt(v * inv_bc2) + eps
        param[i] = param[i] + (coef_grad * g + coef_avg * m) / denom


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _nadam_rows_kernel(param, rows, grad, exp_avg, exp_avg_sq, one_minus_beta1, beta2, inv_bc2,
                       eps, weight_decay, coef_grad, coef_avg):  # fmt: skip
    """The NAdam step of :func:`_nadam_kernel` on rows ``rows`` of 2-D float32 arrays only
    (``grad`` holds one row per entry of ``rows``, which are distinct)."""
    one_minus_beta2 = np.float32(1.0) - beta2
    for n in range(rows.size):
        r = rows[n]
        for i in range(param.shape[1]):
            g = grad[n, i]
            if weight_decay != 0.0:
                g = g + weight_decay * param[r, i]
            m = exp_avg[r, i] + one_minus_beta1 * (g - exp_avg[r, i])
            v = beta2 * exp_avg_sq[r, i] + one_minus_beta2 * g * g
            exp_avg[r, i] = m
            exp_avg_sq[r, i] = v
            denom = math.sqrt(v * inv_bc2) + eps
            param[r, i] = param[r, i] + (coef_grad * g + coef_avg * m) / denom


def _rows_torch(param, rows, grad, exp_avg, exp_avg_sq, one_minus_beta1, beta2, inv_bc2, eps,
                weight_decay, coef_grad, coef_avg) -> None:  # fmt: skip
    """:func:`_nadam_rows_kernel` in torch operations, for any device and dtype."""
    p = param.index_select(0, rows)
    if weight_decay != 0.0:
        grad = grad + weight_decay * p
    m = exp_avg.index_select(0, rows).lerp_(grad, float(one_minus_beta1))
    v = exp_avg_sq.index_select(0, rows).mul_(float(beta2)).addcmul_(grad, grad, value=1 - beta2)
    exp_avg.index_copy_(0, rows, m)
    exp_avg_sq.index_copy_(0, rows, v)
    denom = (v * float(inv_bc2)).sqrt_().add_(float(eps))
    p.add_((grad * float(coef_grad) + m * float(coef_avg)) / denom)
    param.index_copy_(0, rows, p)


def clip_grad_norm(parameters, max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` (2-norm) that also takes sparse gradients, whose
    duplicate rows are summed first (the gradient is coalesced in place): the norm of the whole
    gradient, every tensor scaled by ``max_norm / (norm + 1e-6)`` when that is below 1 (only
    the stored rows of a sparse gradient are walked). Returns the total norm."""
    grads = []
    for p in parameters:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
        grads.append(p.grad)
    if not grads:
        return torch.tensor(0.0)
    squares = [(g._values() if g.is_sparse else g).float().pow(2).sum() for g in grads]
    total = torch.stack(squares).sum().sqrt()
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        (g._values() if g.is_sparse else g).mul_(coef.to(g.dtype))
    return total


def _kernel_ok(p: torch.Tensor) -> bool:
    g = p.grad
    return (
        p.device.type == "cpu"
        and p.dtype == torch.float32
        and p.is_contiguous()
        and not g.is_sparse
        and g.dtype == torch.float32
        and g.is_contiguous()
    )


class FusedNAdam(torch.optim.Optimizer):
    """NAdam with a single-pass CPU kernel; arguments as :class:`torch.optim.NAdam`, plus
    ``sparse_rows`` (row-wise updates of sparse gradients, see the module's docstring)."""

    def __init__(
        self,
        params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        sparse_rows: bool = True,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Invalid betas: {betas}")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)
        #: read by the training module: True asks the word embedding for sparse gradients
        self.sparse_rows = sparse_rows

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            fast, slow, rows = self._partition(group)
            if slow:
                self._fallback(slow, group)
            if fast or rows:
                self._step_compiled(fast, rows, group)
        return loss

    def _partition(self, group: dict) -> tuple[list, list, list]:
        """The group's tensors with a gradient (their state created on first use): for the
        dense kernel, for torch's NAdam, and with sparse row gradients."""
        fast, slow, rows = [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["step"] = torch.tensor(0.0)
                state["mu_product"] = torch.tensor(1.0)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if p.grad.is_sparse:
                rows.append((p, state))
            else:
                (fast if _kernel_ok(p) else slow).append((p, state))
        return fast, slow, rows

    def _step_compiled(self, fast: list, rows: list, group: dict) -> None:
        """One scalar update for all step counters; the momentum schedule is computed once per
        distinct step value (normally one per group); then each tensor is one kernel call."""
        lr, (beta1, beta2) = group["lr"], group["betas"]
        psi, decoupled, wd = (
            group["momentum_decay"],
            group["decoupled_weight_decay"],
            group["weight_decay"],
        )
        one_minus_beta1, beta2_32 = np.float32(1.0 - beta1), np.float32(beta2)
        eps32, wd32 = np.float32(group["eps"]), np.float32(0.0 if decoupled else wd)
        torch._foreach_add_([state["step"] for _, state in fast + rows], 1.0)
        schedule: dict[float, tuple] = {}
        for p, state in fast + rows:
            step = state["step"].item()
            if step not in schedule:
                mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
                mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
                schedule[step] = (mu, mu_next, np.float32(1.0 / (1.0 - beta2**step)))
            mu, mu_next, inv_bc2 = schedule[step]
            state["mu_product"] *= mu
            mu_product = state["mu_product"].item()
            coefs = (
                np.float32(-lr * (1.0 - mu) / (1.0 - mu_product)),
                np.float32(-lr * mu_next / (1.0 - mu_product * mu_next)),
            )
            if p.grad.is_sparse:
                self._step_rows(p, state, group, one_minus_beta1, beta2_32, inv_bc2, coefs)
                continue
            if wd != 0.0 and decoupled:
                p.mul_(1.0 - lr * wd)
            _nadam_kernel(
                p.numpy().reshape(-1),
                p.grad.numpy().reshape(-1),
                state["exp_avg"].numpy().reshape(-1),
                state["exp_avg_sq"].numpy().reshape(-1),
                one_minus_beta1,
                beta2_32,
                inv_bc2,
                eps32,
                wd32,
                *coefs,
            )

    @staticmethod
    def _step_rows(p, state, group, one_minus_beta1, beta2, inv_bc2, coefs) -> None:
        """The NAdam step of the rows a sparse gradient holds (its duplicates summed)."""
        grad = p.grad.coalesce()
        rows = grad._indices()[0]
        values = grad._values().reshape(rows.numel(), -1)
        lr, wd = group["lr"], group["weight_decay"]
        decoupled = group["decoupled_weight_decay"]
        param = p.data.view(p.shape[0], -1)
        if wd != 0.0 and decoupled:
            param.index_copy_(0, rows, param.index_select(0, rows) * (1.0 - lr * wd))
        args = (
            one_minus_beta1,
            beta2,
            inv_bc2,
            np.float32(group["eps"]),
            np.float32(0.0 if decoupled else wd),
            *coefs,
        )
        exp_avg = state["exp_avg"].view(p.shape[0], -1)
        exp_avg_sq = state["exp_avg_sq"].view(p.shape[0], -1)
        if p.device.type == "cpu" and p.dtype == torch.float32 and p.is_contiguous():
            _nadam_rows_kernel(
                param.numpy(),
                rows.numpy(),
                values.contiguous().numpy(),
                exp_avg.numpy(),
                exp_avg_sq.numpy(),
                *args,
            )
        else:
            _rows_torch(param, rows, values.to(p.dtype), exp_avg, exp_avg_sq, *args)

    @staticmethod
    def _fallback(tensors: list[tuple[torch.Tensor, dict]], group: dict) -> None:
        """torch's own NAdam update for the tensors the kernel cannot take, in one call (its
        ``foreach`` implementation where torch has one for them, e.g. on a GPU)."""
        from torch.optim.nadam import nadam

        nadam(
            [p for p, _ in tensors],
            [p.grad for p, _ in tensors],
            [s["exp_avg"] for _, s in tensors],
            [s["exp_avg_sq"] for _, s in tensors],
            [s["mu_product"] for _, s in tensors],
            [s["step"] for _, s in tensors],
            foreach=None,
            beta1=group["betas"][0],
            beta2=group["betas"][1],
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            momentum_decay=group["momentum_decay"],
            eps=group["eps"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )
