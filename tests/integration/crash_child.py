"""Child process for the SIGKILL test: starts an import with copy and reports when the copy
is under way, then waits to be killed. Usage: python -m tests.integration.crash_child
STATE_DIR STORAGE_ROOT IMPORT_DIR TARGET_DISK"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from vsms.app import Service
from vsms.cim.embedded import serialize_instance
from vsms.client import LocalClient
from vsms.settings import Settings


def main() -> None:
    state, root, import_dir, target = sys.argv[1:5]
    service = Service(Settings(state_dir=Path(state), storage_roots=(Path(root),)))
    client = LocalClient(service.registry)
    rv, out = client.vsms("GetVirtualSystemImportSettingData", ImportDirectory=import_dir)
    isd = out["ImportSettingData"]
    isd["CreateCopy"] = True
    isd["TargetResourcePaths"] = [target]
    rv, out = client.vsms("ImportVirtualSystemEx", ImportDirectory=import_dir,
                          ImportSettingData=serialize_instance(isd))
    job_id = out["Job"].keybindings["InstanceID"]
    deadline = time.monotonic() + 120
    while not (os.path.exists(target) and os.stat(target).st_blocks > 0):
        if time.monotonic() > deadline:
            print("TIMEOUT", flush=True)
            return
        time.sleep(0.005)
    print(f"COPYING {job_id}", flush=True)
    time.sleep(300)


if __name__ == "__main__":
    main()
