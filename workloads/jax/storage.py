"""Data and checkpoints are addressed by URI, so the local target swaps S3 for a directory and nothing else.

file:// is served by the local file system; s3:// and gs:// by fsspec's s3fs and
gcsfs (install meshstack[cloud]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import fsspec

REMOTE = {"s3": "s3fs", "gs": "gcsfs"}


class StorageError(RuntimeError):
    """A URI that cannot be read or written, with what to do about it."""


def filesystem(uri: str) -> tuple[Any, str]:
    """(fsspec file system, path within it) for a file://, s3:// or gs:// URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return fsspec.filesystem("file"), parsed.path
    if parsed.scheme in REMOTE:
        try:
            return fsspec.filesystem(parsed.scheme), f"{parsed.netloc}{parsed.path}"
        except ImportError as exc:
            raise StorageError(
                f"{uri}: reading {parsed.scheme}:// needs {REMOTE[parsed.scheme]} (pip install 'meshstack[cloud]')"
            ) from exc
    raise StorageError(f"{uri}: unsupported URI scheme '{parsed.scheme}' (use file://, s3:// or gs://)")


def checkpoint_location(uri: str) -> str:
    """What orbax takes: a local path for file://, the URI itself for object stores."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return parsed.path
    if parsed.scheme in REMOTE:
        return uri
    raise StorageError(f"{uri}: unsupported URI scheme '{parsed.scheme}' (use file://, s3:// or gs://)")


def file_uri(path: Path) -> str:
    return path.resolve().as_uri()
