"""Datasets from installed packages, the user's files, tokenizers and batching."""

from lstmkit.data.errors import DataError, MissingDependency
from lstmkit.data.vocab import CharVocab

__all__ = ["CharVocab", "DataError", "MissingDependency"]
