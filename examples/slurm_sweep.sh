#!/usr/bin/env bash
# One Optuna study, many machines: a SLURM job array whose every task runs the same `moderncnn sweep` command against
# one shared storage. Each task is a worker; together they run the study's trials once each, and a task that is
# killed (pre-empted, out of time) leaves its trial failed, to be retried by the others or by the next submission.
#
#   sbatch examples/slurm_sweep.sh                          # 8 tasks, the bundled googlenet_uva sweep
#   SPEC=my_sweep.yaml sbatch --array=0-15 examples/slurm_sweep.sh
#
# Storage: a PostgreSQL (or MySQL) server every node reaches, or Optuna's journal file on a shared file system
# (set STORAGE=journal:/shared/sweeps/NAME/journal.log; no server needed). SQLite files are for one machine only.
# The sweep folder (--out) must be on a shared file system too: the trials' run directories are written there.
#
#SBATCH --job-name=moderncnn-sweep
#SBATCH --array=0-7
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4
#SBATCH --time=02:00:00
#SBATCH --output=sweep-%A_%a.out
set -euo pipefail

SPEC=${SPEC:-googlenet_uva}
OUT=${OUT:-$HOME/sweeps/$(basename "${SPEC%.yaml}")}
STORAGE=${STORAGE:-postgresql://moderncnn@dbhost/sweeps}
WORKERS=${WORKERS:-1}   # local worker processes per task; they split the task's CPUs

# The first task to reach the storage creates the study; the others join it. Submitting again resumes it.
export OMP_NUM_THREADS=$(( ${SLURM_CPUS_PER_TASK:-1} / WORKERS ))
srun moderncnn sweep "$SPEC" --out "$OUT" --storage "$STORAGE" --workers "$WORKERS" --quiet
# When every task is done:  moderncnn sweep report "$OUT" --best
