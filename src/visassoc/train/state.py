"""The training folder: what may be written where, and the resume state, which is never unpickled.

The resume state is ``state/last.safetensors`` (trainable tensors + optimizer tensors) plus
``state/last.json`` (step, counters, history, optimizer hyper-parameters, config). Neither format can run
code when read, so a crafted state file is at worst an error, never an exploit. The JSON names the step its
tensors were saved at, so a pair written by two different saves is caught instead of mixed.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

# what `visassoc train` writes into --out; anything else there belongs to someone else
OURS = {"encoder.json", "weights.safetensors", "base", "manifest.json", "train.jsonl", "training.png",
        "skipped.jsonl", "state", "cache"}
STATE, META = "last.safetensors", "last.json"


def check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything is created, an --out that would lose someone's files or a finished run."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    foreign = [e for e in entries if e not in OURS]
    if foreign:
        raise ValueError(f"--out {out} is not empty and is not a visassoc training folder (it holds "
                         f"{', '.join(foreign[:5])}{'…' if len(foreign) > 5 else ''}); choose a new or empty folder")
    if resume:
        if not (out / "state" / META).is_file():
            raise ValueError(f"nothing to resume in {out}: no state/{META} (train without --resume first)")
        return
    run = [e for e in entries if e != "cache"]
    if run and not overwrite:
        raise ValueError(f"--out {out} already holds a training run ({', '.join(run)}); pass --resume to continue "
                         "it or --overwrite to replace it")


def clear_run(out: Path) -> None:
    """--overwrite: remove the previous run's files (the caches stay: they are keyed by content)."""
    for name in OURS - {"cache"}:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def save_state(state_dir: Path, step: int, trainable: dict[str, torch.Tensor], opt: torch.optim.Optimizer,
               meta: dict) -> None:
    tensors = {f"param/{k}": v.contiguous() for k, v in trainable.items()}
    sd = opt.state_dict()
    scalars: dict[str, dict] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt/{pid}/{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    save_file(tensors, str(state_dir / "last.tmp.safetensors"), metadata={"step": str(step)})
    (state_dir / "last.tmp.safetensors").replace(state_dir / STATE)
    doc = {**meta, "step": step, "optimizer": {"param_groups": sd["param_groups"], "scalars": scalars}}
    (state_dir / "last.tmp.json").write_text(json.dumps(doc))
    (state_dir / "last.tmp.json").replace(state_dir / META)


def load_state(state_dir: Path) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(meta, trainable tensors, optimizer state dict); a damaged or mismatched state is a ValueError."""
    try:
        meta = json.loads((state_dir / META).read_text())
        from safetensors import safe_open

        with safe_open(str(state_dir / STATE), framework="pt") as f:
            saved_step = (f.metadata() or {}).get("step")
        tensors = load_file(str(state_dir / STATE))
        step = int(meta["step"])
        groups, scalars = meta["optimizer"]["param_groups"], meta["optimizer"]["scalars"]
    except Exception as e:  # noqa: BLE001 - any damage to the state files ends in one line
        msg = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(f"cannot resume from {state_dir}: the saved state is damaged or truncated "
                         f"({type(e).__name__}: {msg[:120]}); rerun without --resume and with --overwrite") from None
    if saved_step != str(step):
        raise ValueError(f"cannot resume from {state_dir}: {STATE} (step {saved_step}) and {META} (step {step}) "
                         "come from different saves")
    trainable = {k[len("param/"):]: v for k, v in tensors.items() if k.startswith("param/")}
    opt_state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt/"):
            _, pid, name = k.split("/", 2)
            opt_state.setdefault(int(pid), {})[name] = v
    for pid, st in scalars.items():
        opt_state.setdefault(int(pid), {}).update(st)
    return meta, trainable, {"state": opt_state, "param_groups": groups}
