"""Checks for the labs' exercises: each tells a student whether an answer is right, and why not.

A check prints one line and returns True or False; it never raises. An unanswered exercise (None, or a
function that raises NotImplementedError) is "not answered yet", so a notebook runs top to bottom. A wrong
kind of answer (a string for a number, a function that returns None, a wrong shape, NaN) or a function that
raises is "not yet", with a line saying what was expected.
"""

from __future__ import annotations

import functools
import math
import numbers
import traceback
from collections.abc import Callable

import torch


class Unanswered(Exception):
    """The exercise has no answer yet."""


class NotYet(Exception):
    """A wrong answer; the message says why."""


def report(name: str, ok: bool, message: str = "") -> bool:
    """Print the verdict of one check and return it."""
    print(f"{'✓' if ok else '✗'} {name}: {'correct' if ok else 'not yet'}{' — ' + message if message else ''}")
    return ok


def unanswered(name: str) -> bool:
    print(f"… {name}: not answered yet")
    return False


def exercise(name: str):
    """Make a check body (which raises Unanswered or NotYet, or returns) into a check that prints and returns."""
    def wrap(check: Callable[..., None]) -> Callable[..., bool]:
        @functools.wraps(check)
        def run(*args, **kwargs) -> bool:
            try:
                check(*args, **kwargs)
            except Unanswered:
                return unanswered(name)
            except NotYet as e:
                return report(name, False, str(e))
            return report(name, True)
        return run
    return wrap


def need_function(fn) -> Callable:
    """The student's function; Unanswered for None, NotYet for anything that cannot be called."""
    if fn is None:
        raise Unanswered
    if not callable(fn):
        raise NotYet(f"give your function itself (the name after def, without brackets), got {fn!r:.60} "
                     f"({type(fn).__name__})")
    return fn


def call(fn: Callable, *args):
    """Call the student's function: Unanswered while it raises NotImplementedError, NotYet if it raises else."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise Unanswered from None
    except Exception as e:  # noqa: BLE001 - a student's bug is reported, not thrown into the notebook
        frames = traceback.extract_tb(e.__traceback__)[1:]  # [0] is this call
        where = f" at line {frames[-1].lineno}: {frames[-1].line}" if frames and frames[-1].line else ""
        raise NotYet(f"your function raised {type(e).__name__}: {e}{where}") from None


def need_tensor(got, like: torch.Tensor, what: str = "the result") -> torch.Tensor:
    """``got`` as a finite tensor shaped like ``like``, in its dtype, else NotYet saying what is wrong."""
    shape = tuple(like.shape)
    if got is None:
        raise NotYet(f"{what} is None: did you forget `return`?")
    if not isinstance(got, torch.Tensor):
        raise NotYet(f"return a torch.Tensor of shape {shape}, got {got!r:.60} ({type(got).__name__})")
    if tuple(got.shape) != shape:
        raise NotYet(f"{what} has shape {tuple(got.shape)}, want {shape}")
    if not torch.isfinite(got).all():
        raise NotYet(f"{what} holds NaN or infinite values (a division by zero, or sqrt of a negative?)")
    return got.to(like.dtype)  # float64 answers compare with float32 ones


def need_number(got, what: str = "the result") -> float:
    """``got`` (a Python, numpy or one-element torch number) as a finite float, else NotYet."""
    if got is None:
        raise NotYet(f"{what} is None: did you forget `return`?")
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            raise NotYet(f"{what} should be one number, got a tensor of shape {tuple(got.shape)}")
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        raise NotYet(f"{what} should be a number, got {got!r:.60} ({type(got).__name__})")
    try:
        value = float(got)
    except OverflowError:  # an int of hundreds of digits has no float
        raise NotYet(f"{what} is too large to be a float ({got!r:.30}...)") from None
    if not math.isfinite(value):
        raise NotYet(f"{what} is {value}, not a finite number")
    return value


def need_int(got, lo: int, hi: int, what: str = "the answer") -> int:
    """``got`` as an integer in lo..hi (3.0 counts as 3), else NotYet saying what was expected."""
    if got is None:
        raise Unanswered
    value = need_number(got, what)
    if not value.is_integer():
        raise NotYet(f"{what} should be a whole number, got {got!r}")
    if not lo <= value <= hi:
        raise NotYet(f"{what} should lie in {lo}..{hi}, got {int(value)}")
    return int(value)
