"""Where an experiment writes and how big it may be (kept apart so every experiment module
can import it without importing the package that lists the experiments)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Context:
    """Where an experiment writes, and how big it may be."""

    doc: Path
    figures: Path
    quick: bool = False
    seed: int = 0

    def figure_path(self, name: str) -> Path:
        self.figures.mkdir(parents=True, exist_ok=True)
        return self.figures / name

    def link(self, path: Path) -> str:
        """Path of ``path`` relative to the document (for markdown image links)."""
        return Path(os.path.relpath(path, self.doc.parent)).as_posix()

    def pick(self, full, quick):
        return quick if self.quick else full
