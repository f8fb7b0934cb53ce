"""Re-scoring a finished run on one of its splits (the data is rebuilt from its config)."""

from __future__ import annotations

from lstmkit.train.run import load_run
from lstmkit.train.tasks import make_task


def evaluate_run(run_dir: str, split: str = "test") -> dict:
    """Metrics of the run's saved model on ``split`` (``test``, ``valid`` or ``train``)."""
    run = load_run(run_dir)
    cfg = run.config
    task = make_task(cfg)
    if getattr(task, "vocab", None) is not None and run.tokenizer is not None:
        task.vocab = run.tokenizer
        if hasattr(task, "encoded"):
            task.encoded = {
                name: [run.tokenizer.encode(t, cfg.max_len or None) for t in part.texts]
                for name, part in task._splits().items()
            }
    metrics = task.evaluate(run.model, split)
    return {"run_dir": run_dir, "split": split, **metrics}
