"""How a view reports trouble: errors and warnings in place, stale pictures marked, bad values refused.

A view's logic class mixes in ``Feedback``. Work that a user's input starts runs through ``attempt``: any
exception becomes the error line ("type: message") instead of escaping into the notebook, the warnings it
raised become the warning line, and after a failure the pictures still shown are stamped STALE, so an old
picture never sits under an empty error line. A number outside its range is refused by ``refuse``: the
error line names the argument, the allowed range and the value kept; in a constructor it raises instead,
so that ``View(t=5000)`` fails before any work rather than starting from some other value.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from traitlets import Bool, HasTraits, Unicode

from .plots import stale_png

#: Warnings meant for the person at the keyboard; others (deprecations) are for developers and pass through.
SHOWN_WARNINGS = (UserWarning, RuntimeWarning)


def describe(error: BaseException) -> str:
    """``type: message``, the form every error line takes."""
    return f"{type(error).__name__}: {error}"


class Feedback(HasTraits):
    """The error line, the warning line and the stale flag of a view, and the helpers that set them."""

    error = Unicode(help="why the last input failed; empty when the pictures match the inputs")
    warning = Unicode(help="what the last run warned about (it went ahead)")
    stale = Bool(False, help="the pictures shown are from earlier inputs, and stamped STALE")

    #: names of the Bytes traits holding the view's pictures, stamped when stale
    picture_traits: tuple[str, ...] = ()

    _ready = False  # False while the constructor sets the traits: a bad value raises there

    def attempt(self, fn: Callable[[], object], stamp: tuple[str, ...] | None = None) -> bool:
        """Run ``fn``, showing its exception and warnings in place; True if it succeeded.

        ``stamp`` names the pictures that a failure leaves stale (by default all of ``picture_traits``).
        """
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fn()
                error = ""
            except Exception as e:  # noqa: BLE001 - the widget boundary: show it, keep the view alive
                error = describe(e)
        shown = []
        for w in caught:
            if issubclass(w.category, SHOWN_WARNINGS):
                line = f"{w.category.__name__}: {w.message}"
                if line not in shown:
                    shown.append(line)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self.warning = "; ".join(shown)
        self.error = error
        if error:
            self.mark_stale(self.picture_traits if stamp is None else stamp)
        else:
            self.stale = False
        return not error

    def mark_stale(self, names: tuple[str, ...] | None = None) -> None:
        """Stamp the pictures ``names`` (default: all) as STALE, once: a stamped picture is not stamped again."""
        names = self.picture_traits if names is None else names
        stamped = self.__dict__.setdefault("_stamped", {})  # trait name -> the stamped bytes it shows
        for name in names:
            data = getattr(self, name)
            if data and data != stamped.get(name):
                stamped[name] = stale_png(data)
                setattr(self, name, stamped[name])
        if names:
            self.stale = True

    def refuse(self, proposal, allowed: str):
        """Refuse a proposed trait value: raise in the constructor, else show why in place and keep the old value."""
        name, value = proposal["trait"].name, proposal["value"]
        message = f"{name} must be {allowed}, got {value!r}"
        if not self._ready:
            raise ValueError(message)
        kept = getattr(self, name)
        self.error = f"{message}; kept {kept!r}"
        return kept


def in_range(value, lo, hi) -> bool:
    """lo <= value <= hi; False for NaN (every comparison with NaN is False) and for True/False, which an Int
    trait accepts (bool is an int) but which would index a tensor as a mask rather than as a step."""
    return not isinstance(value, bool) and bool(lo <= value <= hi)
