"""Global rank 0, and only it, writes the run: decided from the launcher's environment before any Trainer exists."""

import pytest

from moderncnn.engine.ranks import holder_notice, is_global_zero, launch_ranks

LAUNCH_VARIABLES = (
    "RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "MASTER_ADDR", "TORCHELASTIC_RUN_ID",
    "SLURM_NTASKS", "SLURM_NTASKS_PER_NODE", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID", "SLURM_JOB_NAME",
    "LSB_JOBID", "LSB_DJOB_RANKFILE", "JSM_NAMESPACE_LOCAL_RANK", "JSM_NAMESPACE_SIZE",
)  # fmt: skip


@pytest.fixture
def launched(monkeypatch):
    """Set a launcher's variables on a clean environment."""
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def launch(**variables):
        for name, value in variables.items():
            monkeypatch.setenv(name, str(value))

    return launch


def test_a_single_process_writes_its_run(launched):
    launched()
    assert launch_ranks() == (0, 0, 0) and is_global_zero() and holder_notice() is None


def test_lightning_launch_on_two_nodes_node_1_writes_nothing_and_says_who_does(launched):
    launched(MASTER_ADDR="10.0.0.1", MASTER_PORT=29500, NODE_RANK=1, WORLD_SIZE=2)
    assert launch_ranks() == (1, 0, None) and not is_global_zero()
    assert holder_notice() == (
        "node 1: global rank 0 holds the run (on node 0, 10.0.0.1) and writes its run directory, metrics and "
        "checkpoints; this node writes nothing"
    )


def test_the_processes_lightning_starts_on_node_0_write_nothing_silently(launched):
    launched(MASTER_ADDR="127.0.0.1", MASTER_PORT=29500, NODE_RANK=0, LOCAL_RANK=1, WORLD_SIZE=4)
    assert not is_global_zero() and holder_notice() is None


@pytest.mark.parametrize("rank, writes", [(0, True), (3, False)])
def test_torchrun_gives_the_global_rank(launched, rank, writes):
    # torchrun's second node: GROUP_RANK 1. Lightning's own rank_zero_only would read RANK too; it is LOCAL_RANK
    # and NODE_RANK that it misreads, under its own launcher (the test above).
    launched(TORCHELASTIC_RUN_ID="job", RANK=rank, LOCAL_RANK=rank % 2, GROUP_RANK=rank // 2, WORLD_SIZE=4)
    assert launch_ranks() == (rank // 2, rank % 2, rank) and is_global_zero() == writes


def test_slurm_gives_the_global_rank_unless_the_job_is_interactive(launched):
    launched(SLURM_NTASKS=4, SLURM_NTASKS_PER_NODE=2, SLURM_PROCID=2, SLURM_LOCALID=0, SLURM_NODEID=1)
    launched(SLURM_JOB_NAME="train")
    assert launch_ranks() == (1, 0, 2) and not is_global_zero() and "node 1: global rank 0" in holder_notice()
    launched(SLURM_JOB_NAME="interactive")  # Lightning then launches the processes itself
    assert launch_ranks() == (0, 0, 0) and is_global_zero()
