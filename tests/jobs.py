"""Job scripts the live tests run as entrypoints (on Ray, or under the real `gpupool up`)."""

from __future__ import annotations


def checkpointing_job(step_seconds: float) -> str:
    """A job that loops in steps of ``step_seconds``; on a checkpoint request it saves its step,
    reports it and waits to be stopped. Resumed, it goes on from the saved step and exits 0 after
    5 more steps."""
    return _CHECKPOINTING.replace("STEP_SECONDS", repr(step_seconds))


_CHECKPOINTING = """
import json, sys, time
from gpupool import runtime

start = 0
if runtime.resume_from() is not None:
    start = json.loads(runtime.resume_from().read_text())["step"]
    print(f"resumed from step {start} (attempt {runtime.attempt()})", flush=True)
step = start
while True:
    step += 1
    if runtime.checkpoint_requested():
        path = runtime.checkpoint_dir() / "state.json"
        path.write_text(json.dumps({"step": step}))
        runtime.report_checkpoint(path)
        print(f"checkpointed at step {step}", flush=True)
        time.sleep(600)
    if start and step >= start + 5:
        print(f"done at step {step}", flush=True)
        sys.exit(0)
    time.sleep(STEP_SECONDS)
"""
