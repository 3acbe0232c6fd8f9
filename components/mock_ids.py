"""The ids every cloud's offline answers derive from a resource's type and name: the same spec previewed
twice gets the same ids, so a cost or plan diff shows only real changes."""

from __future__ import annotations

import hashlib


def digest(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]
