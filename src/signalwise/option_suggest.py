"""What an unknown option is told it may have meant: only options close to it.

The option parser (Typer's copy of click's) suggests options by difflib's default cutoff (0.6) over the whole
name, dashes included, so the shared `--` alone makes `--bogus` "close" to `--out`, `--no-gui` and `--routes`,
and a newcomer reads unrelated options as advice. Compared without the dashes, at a higher cutoff, a misspelling
still finds its option (`--duraton`: `--duration`) and a word unlike any option finds none; an option the given
name begins (`--dur`) is suggested too. The parser builds its error where it parses, with no hook for the
suggestion: `install` gives its module an error class that makes its own from the command's options.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: how alike (difflib's ratio, dashes left out) a name and an option must be for the option to be suggested
CLOSE_RATIO = 0.75
#: the fewest letters of an option's beginning that suggest it (`--dur` for `--duration`)
PREFIX_LETTERS = 3


def close_options(given: str, options: Iterable[str]) -> list[str]:
    """The options of `options` that `given` most likely meant, closest first; none when nothing is close."""
    name = given.lstrip("-").lower()
    by_name = {option.lstrip("-").lower(): option for option in options}
    close = difflib.get_close_matches(name, list(by_name), n=3, cutoff=CLOSE_RATIO)
    begun = [o for o in by_name if len(name) >= PREFIX_LETTERS and o.startswith(name) and o not in close]
    return [by_name[o] for o in close + sorted(begun)][:3]


def _long_options(ctx) -> list[str]:  # noqa: ANN001 - a click Context
    """Every long option of the command `ctx` parses for."""
    params = getattr(getattr(ctx, "command", None), "params", ())
    return [o for p in params for o in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))
            if o.startswith("--")]


def install() -> None:
    """Make the option parser raise an error with `close_options`' suggestions (still its own NoSuchOption, so
    everything that catches or shows one is unchanged). Nothing changes where Typer's parser is not where this
    Typer version keeps it."""
    try:
        from typer._click import parser
        from typer._click.exceptions import NoSuchOption
    except ImportError:
        return
    if getattr(parser.NoSuchOption, "_close_only", False):
        return

    class CloseNoSuchOption(NoSuchOption):
        _close_only = True

        def __init__(self, option_name, message=None, possibilities=None, ctx=None) -> None:  # noqa: ANN001
            super().__init__(option_name, message, possibilities, ctx)
            options = _long_options(ctx) or list(possibilities or ())
            self.possibilities = close_options(option_name, options) or None

    parser.NoSuchOption = CloseNoSuchOption
