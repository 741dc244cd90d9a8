"""A scratch folder for the files one check downloads or writes; gone when it ends."""
from __future__ import annotations

import tempfile


def temp_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="gate-")
