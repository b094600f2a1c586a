"""torchrun / DistributedDataParallel helpers for the shared Trainer and the runner.

Under `torchrun --nproc-per-node N edgetl compress recipe.yaml` every process runs the recipe: stages that
train (`Stage.distributed = True`) train on every rank, each rank taking its slice of every global batch
(so the optimizer sees the same global batch as one process would); rank 0 alone writes stage folders,
reports and artifacts, and the other ranks read them back. Backend: nccl on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def maybe_init() -> bool:
    """Join the process group torchrun describes (env://); True when running distributed."""
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if env_world_size() <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    log.info("distributed: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    try:
        import torch.distributed as dist
    except ImportError:
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_and_world()[0] == 0


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def shard(raw: Any, labels, rank: int, world: int) -> tuple[Any, Any]:
    """This rank's slice of a global batch (strided, so slices differ by at most one example)."""
    if world <= 1:
        return raw, labels
    if isinstance(raw, list):
        return raw[rank::world], labels[rank::world]
    return raw[rank::world], labels[rank::world]


def wrap_ddp(module, device):
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)
