"""Trials run one after another in this process, without Ray (`genbench run --in-process`): for a
debugger (`breakpoint()` in a method stops at the console), a profiler, or a quick look at a
study on a laptop. The same `genbench.harness.run.trial.attempt_trial` as a Ray Tune trial does the
work, so the rows are the same; what differs: one trial at a time, resources not reserved
(each trial still uses `cpu` threads, and a GPU where it asks for one and there is one), memory
baselines (`mem_base_mb`) that include what earlier trials left (as with `--reuse-workers`;
the peaks are increases over them, measured alike), and a trial stuck in C code past
its timeout cannot be ended (the timeout stops it between two Python bytecodes).
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import torch

from genbench.harness.run.ledger import Work
from genbench.harness.plan.plan import Plan
from genbench.harness.errors import count
from genbench.harness.run.progress import Progress, heartbeat_seconds
from genbench.harness.run.rows import Env
from genbench.harness.store.storage import Stage, progress_file
from genbench.harness.run.trial import TrialOutcome, attempt_trial


def run_inprocess(plan: Plan, work: list[Work], out_dir: str, echo, max_failures: int,
                  env: Env, after=lambda trial_id: None) -> list[TrialOutcome]:
    """Do `work` here, trial after trial in the order given, calling `after(trial_id)` as each
    ends; the console lines are a Tune run's (`genbench.harness.run.progress`)."""
    echo(f"{plan.study} [{plan.scale}]: {count(len(work), 'trial')} with work left, one at a time in "
         "this process (--in-process)")
    env = dataclasses.replace(env, run_id=uuid.uuid4().hex, heartbeat_s=heartbeat_seconds(),
                              reuse_workers=True)
    progress = Progress([w.trial for w in work], echo, max_failures, env.heartbeat_s,
                        progress_file(out_dir))
    threads = torch.get_num_threads()
    outcomes = []
    try:
        for w in work:
            trial = w.trial
            tid = trial.trial_id
            torch.set_num_threads(max(1, int(trial.resources.cpu)))
            use_gpu = trial.resources.gpu > 0 and torch.cuda.is_available()
            stage = Stage(out_dir, tid)  # the run directory, or this trial's part of a URI's

            def heartbeat(info: dict, tid: str = tid) -> None:
                progress.heard(tid, info)
                progress.tick()

            progress.started(tid)
            try:
                outcome = attempt_trial(plan, trial, Path(stage.path), env,
                                        torch.device("cuda" if use_gpu else "cpu"), planned=w,
                                        max_failures=max_failures, sync=stage.sync,
                                        progress=heartbeat)
            finally:
                try:
                    stage.finish()
                except OSError as err:  # (a full disk at a URI's stage): said, not raised
                    outcome = TrialOutcome(tid, "error", f"could not finish writing: {err}", 0)
            progress.finished(tid, outcome.status, outcome.message)
            outcomes.append(outcome)
            after(tid)
    finally:
        torch.set_num_threads(threads)
    return outcomes
