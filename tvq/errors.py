"""Typed exceptions. The CLI turns every :class:`TvqError` into one line on stderr and exit 2.

Anything else that escapes is a bug in tvq, not bad input, and keeps its traceback.
"""
from __future__ import annotations


class TvqError(Exception):
    """Base class for errors caused by the user's input or environment."""


class DatasetNotFound(TvqError):
    """Unknown dataset name, or a dataset no source can provide."""


class DataFormatError(TvqError):
    """A file that is not a well-formed UCR TSV (ragged, non-numeric, empty)."""


class MetadataMismatch(TvqError):
    """Loaded data disagrees with the archive's metadata (counts, length, classes)."""


class DownloadError(TvqError):
    """A download failed, was truncated or did not verify."""


class ConfigError(TvqError):
    """Unknown parameter, wrong type or out-of-range value in a params file or override."""


class CheckpointError(TvqError):
    """Missing, corrupted or mismatched checkpoint."""


class DeviceError(TvqError):
    """A device was asked for that this machine does not have."""


class EvaluationError(TvqError):
    """Samples or labels that cannot be scored (wrong length, non-finite, out of range, too few)."""
