"""Executors schedule ``StageWorker`` chunks: in this process (``local``) or on Ray Data (``ray``).

Both write the same resumable parts through the same workers, so they give identical tables.
"""
from __future__ import annotations


def make_executor(cfg, impl):
    if cfg.executor == "ray":
        from visassoc.engine.executors.ray_executor import RayExecutor

        return RayExecutor(cfg)
    from visassoc.engine.executors.local import LocalExecutor

    return LocalExecutor(cfg, impl)


def merge_usage(snapshots) -> dict:
    """Sum per-model usage dicts (numbers add; a cost that is unknown anywhere stays unknown)."""
    total: dict[str, dict] = {}
    for snap in snapshots:
        for model, u in snap.items():
            if not isinstance(u, dict):
                total.setdefault(model, u)
                continue
            acc = total.setdefault(model, {})
            if not isinstance(acc, dict):
                continue
            for k, v in u.items():
                if k in acc and acc[k] is None:
                    continue
                if v is None:
                    acc[k] = None
                elif isinstance(v, (int, float)) and not isinstance(v, bool):
                    acc[k] = acc.get(k, 0) + v
                else:
                    acc.setdefault(k, v)
    return total


def backend_usage(by_stage: dict) -> dict:
    """Per stage, the usage its model backend counted in this process (stages sharing a model
    have one backend each)."""
    out = {}
    for stage, b in by_stage.items():
        fn = getattr(b, "usage", None)
        if callable(fn):
            try:
                out[stage] = fn()
            except Exception as e:  # usage is informative only
                out[stage] = f"unavailable: {e}"
    return out


def usage_by_model(stage_usage: dict, identity: dict) -> dict:
    """Per-stage usage summed per model (``identity[stage]["backend"]["model"]``)."""
    return merge_usage([{str((identity.get(st) or {}).get("backend", {}).get("model", st)): u}
                        for st, u in stage_usage.items()])
