"""Progress within an epoch, for a person at a terminal and for a log file alike."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


class Progress:
    """Progress within an epoch: a tqdm bar on a terminal; elsewhere (a log file, a pipe) a
    plain line every ``every`` seconds instead of a carriage-return frame per batch."""

    def __init__(self, total: int, desc: str, log: Callable[[str], None], every: float = 60.0):
        self.total, self.desc, self.log, self.every = total, desc, log, every
        self.done, self.t0 = 0, time.perf_counter()
        self.last = self.t0
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, desc=desc, unit="batch", leave=False, file=sys.stderr,
                dynamic_ncols=True,
            )  # fmt: skip

    def update(self, mean_loss: float) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
            return
        now = time.perf_counter()
        if now - self.last >= self.every and self.done < self.total:
            self.last = now
            self.log(
                f"  {self.desc}: {self.done}/{self.total} batches, train_loss {mean_loss:.4f}, "
                f"{now - self.t0:.0f}s"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
