"""Go ``time.ParseDuration`` strings ("24h", "1h30m", "90s"), as SPIRE reads its TTLs.

SPIRE parses every TTL with Go's parser, so we accept exactly its units (no days: "7d" is
rejected by SPIRE and therefore here) and print durations back the way Go does.
"""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raise DurationError with a fix if Go would reject it."""
    if not isinstance(text, str) or not text:
        raise DurationError(f"{text!r} is not a duration; write it as Go does, e.g. '24h', '90m' or '1h30m'")
    pos, total = 0, 0.0
    while pos < len(text):
        m = _PART.match(text, pos)
        if not m:
            hint = " (Go durations have no 'd' unit: write '168h' for 7 days)" if "d" in text else ""
            raise DurationError(f"{text!r} is not a duration{hint}; write it as Go does, e.g. '24h', "
                                "'90m' or '1h30m'")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total


def format_duration(seconds: float) -> str:
    """Whole hours/minutes/seconds the way Go prints them, trimmed: 86400 -> '24h', 5400 -> '1h30m'."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{sec}s" if sec else "")
    return out or "0s"
