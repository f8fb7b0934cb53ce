"""Training: configs, the Trainer, run directories, and the CLI commands.

>>> from lstmkit.train import TrainConfig, Trainer, load_run
>>> summary = Trainer(TrainConfig.for_task("sentiment", epochs=1)).fit()   # doctest: +SKIP
>>> run = load_run(summary["run_dir"])                                      # doctest: +SKIP
>>> run.predict(["虽然贵，但是很好用"])                                      # doctest: +SKIP
"""

from lstmkit.train.config import TASKS, TrainConfig
from lstmkit.train.run import Run, load_run
from lstmkit.train.trainer import Trainer, TrainingStopped

__all__ = ["TASKS", "Run", "TrainConfig", "Trainer", "TrainingStopped", "load_run"]
