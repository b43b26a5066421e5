"""Which process of a multi-process run writes its run directory: global rank 0 only, known before the Trainer.

A run on N nodes with D devices each is N x D processes, and each one runs ``train`` from the start: the ones
Lightning launches itself (its subprocess launcher runs the same command again with ``LOCAL_RANK`` set), the ones
torchrun, SLURM or LSF start, and the first process of every node of a multi-node run. ``train`` writes
``config.yaml`` before a Trainer exists, so it cannot ask ``trainer.is_global_zero``; and Lightning's
``rank_zero_only`` does not help there either: before the Trainer sets it, it reads ``RANK``, else ``LOCAL_RANK``,
so the first process of every node counts as rank 0.

:func:`is_global_zero` answers as the Trainer will, from the same cluster environment Lightning picks (the same
detection order as its accelerator connector: torchrun, SLURM, LSF, MPI, else Lightning's own environment, where
global rank 0 is local rank 0 of node 0).

Launches it covers (one command per node; every node needs the same data and, for ``--resume`` or
``test_checkpoint: best``, the same path to the run directory, e.g. on a shared file system):

- Lightning's own: ``MASTER_ADDR=host0 MASTER_PORT=29500 NODE_RANK=<node> moderncnn train ... --num-nodes N
  --devices D --strategy ddp`` (Lightning starts the other D - 1 processes of the node);
- torchrun: ``torchrun --nnodes N --nproc-per-node D --node-rank <node> --master-addr host0 -m moderncnn.cli
  train ... --num-nodes N --devices D --strategy ddp``;
- SLURM: ``srun moderncnn train ... --num-nodes N --devices D --strategy ddp`` in a job of N nodes with
  ``--ntasks-per-node=D``.
"""

from __future__ import annotations

import os


def _cluster_environment():
    """The cluster environment Lightning's Trainer will choose (``_AcceleratorConnector``), as an instance."""
    from lightning.fabric.plugins.environments import (
        LightningEnvironment,
        LSFEnvironment,
        MPIEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    for kind in (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment, MPIEnvironment):
        if kind.detect():
            return kind()
    return LightningEnvironment()


def launch_ranks() -> tuple[int, int, int | None]:
    """``(node_rank, local_rank, global_rank)`` of this process, from its launcher's environment.

    ``global_rank`` is ``None`` under Lightning's own launcher, which numbers the processes only once the Trainer
    knows the devices per node; global rank 0 is still node 0's local rank 0 there.
    """
    from lightning.fabric.plugins.environments import LightningEnvironment

    env = _cluster_environment()
    node, local = env.node_rank(), env.local_rank()
    if isinstance(env, LightningEnvironment):
        return node, local, 0 if node == local == 0 else None
    return node, local, env.global_rank()


def is_global_zero() -> bool:
    """Whether this process is the one that writes the run (global rank 0), before any Trainer exists."""
    node, local, rank = launch_ranks()
    return rank == 0 if rank is not None else node == local == 0


def holder_notice() -> str | None:
    """The line a process that writes nothing prints, once per node (by its local rank 0); ``None`` elsewhere."""
    if is_global_zero():
        return None
    node, local, _ = launch_ranks()
    if local != 0:
        return None  # node 0's other processes, or a node's other processes: one line per node is enough
    where = os.environ.get("MASTER_ADDR")
    return (
        f"node {node}: global rank 0 holds the run (on node 0{f', {where}' if where else ''}) and writes its run "
        "directory, metrics and checkpoints; this node writes nothing"
    )
