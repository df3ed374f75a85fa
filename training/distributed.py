"""Multi-process training the standard way: `torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK,
each process joins the group (NCCL on GPUs, gloo on CPUs) and DistributedDataParallel averages
gradients. BatchNorm statistics are taken over the global batch (SyncBatchNorm), so N processes
with batch B/N each train the same model as one process with batch B.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from training.errors import TrainingError


@dataclass(frozen=True)
class Rank:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def rank_from_env() -> Rank:
    """This process's place as torchrun (or any launcher setting RANK / WORLD_SIZE / LOCAL_RANK) describes it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Rank()
    return Rank(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def join(rank: Rank, device: torch.device) -> None:
    """Join the process group (NCCL for GPUs, gloo otherwise); a single process needs none."""
    if rank.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank.rank, world_size=rank.world)


def shutdown(rank: Rank) -> None:
    if rank.distributed and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(values: dict[str, torch.Tensor], rank: Rank) -> dict[str, float]:
    """Scalars averaged over the processes (one collective for all of them)."""
    names = sorted(values)
    if not names:
        return {}
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in names])
    if rank.distributed:
        dist.all_reduce(stacked)
        stacked /= rank.world
    return dict(zip(names, stacked.tolist()))


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) whose gradient is the all_reduce(SUM) of the incoming gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of `x` over the processes."""
    return _SumOverRanks.apply(x)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span every process (any backend, gloo included).

    torch's SyncBatchNorm runs only on GPUs; this one sums the per-channel moments over the processes
    with a differentiable all-reduce, in two passes (mean, then centred squares) like BatchNorm2d.
    Every process must bring the same batch size.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        n = x.numel() // x.shape[1] * dist.get_world_size()  # elements per channel in the global batch
        mean = sum_over_ranks(x.sum(dim=(0, 2, 3))) / n  # [C]
        centred = x - mean[None, :, None, None]
        var = sum_over_ranks(centred.square().sum(dim=(0, 2, 3))) / n  # biased, as BatchNorm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1), m)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None] if self.affine else y


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d → torch's SyncBatchNorm on GPUs, GlobalBatchNorm2d elsewhere (same state-dict keys)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            bn = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            bn.load_state_dict(child.state_dict())
            setattr(module, name, bn.to(next(child.buffers(), torch.empty(0)).device))
        else:
            sync_batchnorm(child, device)
    return module


def pick_device(name: str = "auto", rank: Rank = Rank()) -> torch.device:
    """'auto' → this process's GPU when CUDA is available, else the CPU; 'cpu', 'cuda', 'cuda:N' as given."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{rank.local_rank}"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"device {name} asked for, but this PyTorch sees no CUDA GPU")
        torch.cuda.set_device(device)
    return device

