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


class OutputError(TvqError):
    """An output path that cannot be written: missing folder, a directory or special file, no permission."""


class RunLocked(TvqError):
    """Another process is training into the same run folder."""


class TrainingDiverged(TvqError):
    """A training loss became NaN or infinite."""


class UnreadableFile(TvqError):
    """A file tvq wrote earlier (a results entry, a cached draw) that is damaged or not what it should be."""
