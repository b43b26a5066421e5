"""Where a sweep's study lives: any Optuna storage, opened with heartbeats so that a killed worker's trial fails and
is tried again.

``sqlite:///PATH`` (the default, a file in the sweep folder), ``postgresql://...`` or ``mysql://...`` open
:class:`optuna.storages.RDBStorage` with a heartbeat and :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`.
``journal:PATH`` opens :class:`optuna.storages.JournalStorage` on a
:class:`~optuna.storages.journal.JournalFileBackend` (a file on a shared file system). Optuna gives journal storages
no heartbeat, so for them a trial whose worker process on this host is gone is failed and retried here, the way
Optuna fails a stale one.
"""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path

from moderncnn.errors import UsageError
from moderncnn.rundir import process_alive

STUDY_FILE = "study.db"
# A trial is retried this many times after its worker dies, then left failed.
MAX_RETRY = 2
_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+", "mysql://", "mysql+", "journal:")


def default_storage(out: Path) -> str:
    return f"sqlite:///{(out / STUDY_FILE).resolve()}"


def open_storage(url: str, heartbeat: float):
    """An Optuna storage for ``url`` whose heartbeat fails a trial silent for ``3 * heartbeat`` seconds (Optuna's
    default is twice; a busy machine can delay a beat)."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if not url.startswith(_SCHEMES):
        raise UsageError(
            f"--storage {url!r} is no storage this sweep knows; give sqlite:///PATH, postgresql://USER@HOST/DB, "
            "mysql://USER@HOST/DB or journal:PATH"
        )
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:")).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    engine = {"pool_pre_ping": True}
    if url.startswith("sqlite:///"):
        # Workers wait for each other's writes instead of failing with "database is locked".
        engine["connect_args"] = {"timeout": 120}
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("postgresql://"):
        # psycopg 3 (`moderncnn[postgresql]`), named: SQLAlchemy before 2.1 would look for psycopg2.
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=max(1, round(heartbeat)),
            grace_period=max(3, round(3 * heartbeat)),
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        )
    except ImportError as err:
        raise UsageError(f"storage {url.split(':')[0]} needs a database driver: {err}") from None
    except Exception as err:  # sqlalchemy's errors: unreachable server, wrong password, no database
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"cannot open storage {_hide_password(url)}: {first}") from None


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{rest.split('@', 1)[1]}"
    return url


def owner() -> dict:
    """Who runs a trial: host and process, recorded with it (for journal storages, which have no heartbeat)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def fail_dead_trials(study) -> list[int]:
    """Fail the running trials of a storage without heartbeats (journal) whose worker on this host is gone, and
    enqueue their retries with Optuna's :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`. Returns their
    numbers.

    Storages with heartbeats need none of this: Optuna fails their stale trials itself."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    if not isinstance(study._storage, optuna.storages.JournalStorage):
        return []
    failed = []
    retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = trial.user_attrs.get("owner") or {}
        if who.get("host") != socket.gethostname() or _alive(who.get("pid")):
            continue
        if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            failed.append(trial.number)
            retry(study, copy.deepcopy(study._storage.get_trial(trial._trial_id)))
    return failed


def _alive(pid) -> bool:
    return not isinstance(pid, int) or process_alive(pid)  # an unknown process: leave its trial
