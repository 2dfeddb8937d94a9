"""Progress lines of the notebooks, on stderr (stdout stays free for results)."""
from __future__ import annotations

import sys
import time

__all__ = ["progress"]


def progress(message: str) -> None:
    """One progress line on stderr, with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
