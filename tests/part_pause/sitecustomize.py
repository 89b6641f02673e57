"""Test hook for runs spread over several processes (Ray actors write parts themselves): with
this folder on PYTHONPATH and VISASSOC_TEST_PART_PAUSE=SECONDS in the environment, every Python
process pauses that long after each part it commits, so that a kill sent once a part is seen
lands while the rest of the stage is still to do. Without the variable it does nothing."""
import os

if os.environ.get("VISASSOC_TEST_PART_PAUSE"):
    import time

    import visassoc.engine.store as _store

    _real, _pause = _store.StageStore.write_part, float(os.environ["VISASSOC_TEST_PART_PAUSE"])

    def _write_part(self, keys, rows):
        _real(self, keys, rows)
        time.sleep(_pause)

    _store.StageStore.write_part = _write_part
