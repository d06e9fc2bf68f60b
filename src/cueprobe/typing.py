"""Type aliases used across cueprobe."""

from __future__ import annotations

import os

PathLike = str | os.PathLike[str]
