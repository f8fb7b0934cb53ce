"""Run-directory files: atomic writes, safetensors weights, resumable training state.

Nothing here pickles: tensors go to safetensors, everything else to JSON. A checkpoint
is two files, ``checkpoint/state-<epoch>.safetensors`` and ``checkpoint/state.json``; the
JSON (written last, atomically) names the tensor file, so a kill at any moment leaves
either the previous complete checkpoint or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from lstmkit.data.errors import DataError

FORMAT_VERSION = 1


def _file_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give (mkstemp makes files 0600)."""
    old = os.umask(0)
    os.umask(old)
    return 0o666 & ~old


_MODE = _file_mode()


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to a temp file in the same directory, fsync, then ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str, fix: str | None = None) -> Any:
    """Parsed JSON; a file that is not valid UTF-8 JSON is a :class:`DataError` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise DataError(
            f"{os.path.basename(path)} is damaged (not valid JSON: {e})",
            path,
            fix or "retrain this run",
        ) from e


def save_tensors(path: str, tensors: dict[str, torch.Tensor]) -> None:
    """Atomic safetensors write (tensors made contiguous; shared storage is copied)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_tensors(path: str, fix: str | None = None) -> dict[str, torch.Tensor]:
    """A safetensors file; a missing, truncated or damaged one is a :class:`DataError`."""
    if not os.path.isfile(path):
        raise DataError(f"{os.path.basename(path)} is missing", path, fix or "retrain this run")
    try:
        return load_file(path)
    except Exception as e:  # safetensors raises its own SafetensorError (or OSError)
        raise DataError(
            f"{os.path.basename(path)} is damaged or truncated ({e})",
            path,
            fix or "retrain this run",
        ) from e


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state dict into tensors and JSON (Adam-style per-param state)."""
    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        keys = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v
                keys[k] = "tensor"
            else:
                keys[k] = v
        meta["state"][str(pid)] = keys
    return tensors, meta


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state = {}
    for pid, keys in meta["state"].items():
        state[int(pid)] = {
            k: tensors[f"optim.{pid}.{k}"] if v == "tensor" else v for k, v in keys.items()
        }
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    run_dir: str,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    info: dict,
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """Everything needed to continue after ``info['epoch']`` epochs (model, Adam, RNG, counters).

    ``extra``: more named tensors to keep (e.g. the running weight average, ``avg.*``).
    """
    ck = os.path.join(run_dir, "checkpoint")
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(extra or {})
    opt_tensors, opt_meta = optimizer_state(opt)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    name = f"state-{info['epoch']}.safetensors"
    save_tensors(os.path.join(ck, name), tensors)
    atomic_write_json(
        os.path.join(ck, "state.json"),
        {"format_version": FORMAT_VERSION, "tensors": name, "optimizer": opt_meta, **info},
    )
    for old in os.listdir(ck):
        if old.startswith("state-") and old != name:
            os.unlink(os.path.join(ck, old))


def _restart_fix(run_dir: str) -> str:
    folder = os.path.join(run_dir, "checkpoint")
    return (
        f"delete {folder} to redo this run from its first epoch with "
        f"`lstmkit train --resume {run_dir}`, or start a new run"
    )


def load_checkpoint(run_dir: str) -> tuple[dict[str, torch.Tensor], dict] | None:
    """``(tensors, info)`` of the last complete checkpoint, or None when there is none.

    A damaged ``state.json`` or tensor file is a :class:`DataError` naming it (a kill cannot
    leave one, atomic writes see to that; a full disk or a copy cut short can)."""
    path = os.path.join(run_dir, "checkpoint", "state.json")
    if not os.path.isfile(path):
        return None
    fix = _restart_fix(run_dir)
    info = read_json(path, fix)
    needed = ("tensors", "optimizer", "epoch")
    if not isinstance(info, dict) or any(k not in info for k in needed):
        raise DataError(f"state.json lacks {', '.join(needed)}", path, fix)
    tensors = load_tensors(os.path.join(run_dir, "checkpoint", str(info["tensors"])), fix)
    return tensors, info


def restore(model, opt, tensors: dict, info: dict, run_dir: str = "") -> None:
    """Model, optimiser and RNG state from :func:`load_checkpoint`."""
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        load_optimizer_state(opt, tensors, info["optimizer"])
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise DataError(
            f"the checkpoint does not fit this run's model ({str(e).splitlines()[0]})",
            os.path.join(run_dir, "checkpoint"),
            _restart_fix(run_dir),
        ) from e
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])


def trim_metrics(run_dir: str, epochs_done: int) -> None:
    """Drop ``metrics.jsonl`` lines past the checkpoint (a killed epoch is redone)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        return
    try:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(x) for x in f if x.strip()]
        keep = [r for r in rows if r["epoch"] <= epochs_done]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(
            f"metrics.jsonl is damaged ({e})",
            path,
            "delete it (the per-epoch log starts again; the checkpoint is unaffected)",
        ) from e
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


def append_metrics(run_dir: str, row: dict) -> None:
    """Add one epoch's line to ``metrics.jsonl`` (rewritten atomically: never half a line)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    old = open(path, encoding="utf-8").read() if os.path.isfile(path) else ""
    atomic_write_text(path, old + json.dumps(row) + "\n")
