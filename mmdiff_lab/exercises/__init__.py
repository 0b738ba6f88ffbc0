"""Checks for the labs' exercises: each tells a student whether an answer is right, and why not.

A check prints one line and returns True or False; an unanswered exercise (None, or a function that
raises NotImplementedError) is "not answered yet", never an exception, so a notebook runs top to bottom.
"""

from __future__ import annotations

from collections.abc import Callable


def report(name: str, ok: bool, message: str = "") -> bool:
    """Print the verdict of one check and return it."""
    print(f"{'✓' if ok else '✗'} {name}: {'correct' if ok else 'not yet'}{' — ' + message if message else ''}")
    return ok


def unanswered(name: str) -> bool:
    print(f"… {name}: not answered yet")
    return False


def attempt(fn: Callable, *args):
    """Call a student's answer: (result, None), or (None, "unanswered") while it raises NotImplementedError."""
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, "unanswered"
