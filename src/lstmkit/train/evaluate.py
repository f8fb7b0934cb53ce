"""Re-scoring a finished run on one of its splits (the data is rebuilt from its config)."""

from __future__ import annotations

import torch

from lstmkit.train.run import load_run
from lstmkit.train.tasks import make_task


def evaluate_run(run_dir: str, split: str = "test") -> dict:
    """Metrics of the run's saved model on ``split`` (``test``, ``valid`` or ``train``)."""
    run = load_run(run_dir)
    cfg = run.config
    task = make_task(cfg)
    if getattr(task, "vocab", None) is not None and run.tokenizer is not None:
        task.vocab = run.tokenizer
        if hasattr(task, "encode_all"):
            task.encode_all()
        elif hasattr(task, "ids"):
            task.ids = {
                name: torch.tensor(run.tokenizer.encode(getattr(task.corpus, name)))
                for name in ("train", "valid", "test")
            }
    metrics = task.evaluate(run.model, split)
    return {"run_dir": run_dir, "split": split, **metrics}
