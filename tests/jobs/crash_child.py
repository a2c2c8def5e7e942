"""Child process of the SIGKILL recovery test.

Usage: python crash_child.py DATABASE FILE. Submits one job that registers the undo of FILE,
creates FILE, reports 40 %, prints the job ID and then blocks until it is killed (or 60 s pass).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from tests.jobs.helpers import FnWork, RemovePath, book
from vsms.jobs.context import JobContext
from vsms.jobs.manager import JobManager
from vsms.store.db import Store


def main() -> int:
    database, target = Path(sys.argv[1]), Path(sys.argv[2])
    ready = threading.Event()

    def body(ctx: JobContext) -> None:
        ctx.progress(40)
        ctx.add_undo(RemovePath(str(target)))
        target.write_text("partial")
        ready.set()
        threading.Event().wait(60)

    mgr = JobManager(Store(database), book(), workers=1)
    rec = mgr.submit(name="Crash Test", description="blocks until killed", work=FnWork(body))
    if not ready.wait(30):
        return 2
    print(rec.instance_id, flush=True)
    threading.Event().wait(60)
    return 1


if __name__ == "__main__":
    sys.exit(main())
