"""The one base class of every error a user can fix (a bad flag, a damaged file, an unreachable endpoint).

`searchgym` prints a `SearchGymError` as one line `error: <message>` and exits 2; any other exception is a bug
and keeps its traceback. A message names the file or setting, the problem and what to do.
"""

from __future__ import annotations


class SearchGymError(Exception):
    """A problem the user can fix; the message says which file or setting and what to do."""


class InputError(SearchGymError, ValueError):
    """A command-line value or a name that cannot be used."""
