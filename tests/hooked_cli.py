"""`visassoc` CLI with a test hook in the store, for faults that must land at an exact moment.

    python tests/hooked_cli.py slow SECONDS -- run ...        sleep after every committed part
    python tests/hooked_cli.py kill STAGE N -- run ...        SIGKILL this process right after the
                                                              N-th Parquet file of STAGE is written
                                                              (N odd: a part's first table, before
                                                              the rest of its data and its marker)

Only the store's module functions are wrapped; the run itself is the real one.
"""
import os
import signal
import sys
import time

import visassoc.engine.store as store

args = sys.argv[1:]
split = args.index("--")
hook, cli_args = args[:split], args[split + 1:]
if hook[0] == "slow":
    real_part, pause = store.StageStore.write_part, float(hook[1])

    def write_part(self, keys, rows):
        real_part(self, keys, rows)
        time.sleep(pause)  # a slow disk: a kill sent after a part lands before the next one

    store.StageStore.write_part = write_part
elif hook[0] == "kill":
    real_table, stage, n, seen = store.write_table_atomic, hook[1], int(hook[2]), [0]

    def write_table_atomic(table, path):
        real_table(table, path)
        if path.parent.name.startswith(stage + "-"):
            seen[0] += 1
            if seen[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)

    store.write_table_atomic = write_table_atomic
else:
    sys.exit(f"unknown hook {hook}")

from visassoc.cli import app  # noqa: E402

app(prog_name="visassoc", args=cli_args)
