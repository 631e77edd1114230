"""The one error hierarchy: every error journeymap raises on purpose, and how each surface shows it.

The CLI, the JSON API and the web app map an error to an exit code, an HTTP status and a message by its
*type*, never by its text:

==================  =========  ======  ===========================================================
class               exit code  HTTP    meaning
==================  =========  ======  ===========================================================
OptionError         2          422     an option of an analysis is out of bounds or malformed
DefinitionError     1          409     journeymap.yml is invalid (each problem has its key path)
InputError          1          400     a file or request body cannot be read as given
WorkspaceError      1          409     the workspace cannot serve this now (missing, locked)
NotEnoughData       3          409     the data cannot support the answer; says what to add
MissingExtra        1          409     an optional extra is not installed; says how to install it
InternalError       70         500     a bug: anything else, reported with a pointer to report it
==================  =========  ======  ===========================================================

Every class but InternalError is also a ``ValueError`` (``WorkspaceError`` a ``RuntimeError`` too), so
callers written against the standard exceptions keep working.

>>> e = OptionError("--window must be positive", option="window")
>>> (e.exit_code, e.http_status, e.option, str(e))
(2, 422, 'window', '--window must be positive')
>>> n = NotEnoughData("no churn is defined", add="a `churn:` section in journeymap.yml")
>>> str(n)
'no churn is defined: add a `churn:` section in journeymap.yml'
>>> problem(InternalError("boom"))
{'error': 'internal', 'detail': 'boom'}
"""

from __future__ import annotations

import difflib

__all__ = [
    "DefinitionError",
    "InputError",
    "InternalError",
    "JourneymapError",
    "MissingExtra",
    "NotEnoughData",
    "OptionError",
    "UserError",
    "WorkspaceError",
    "problem",
    "raised_by_journeymap",
]


class JourneymapError(Exception):
    """Base of every error journeymap raises on purpose."""

    exit_code = 1
    http_status = 500
    kind = "error"


class UserError(JourneymapError, ValueError):
    """Something the user can fix; the message says what and how."""

    http_status = 400
    kind = "user"


class OptionError(UserError):
    """An analysis option is malformed or out of bounds. `option` names it (the parameter's field name)."""

    exit_code = 2
    http_status = 422
    kind = "option"

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


class DefinitionError(UserError):
    """journeymap.yml is invalid: `problems` lists (key path, message) pairs."""

    http_status = 409
    kind = "definition"

    def __init__(self, path, problems: list[tuple[str, str]]):
        self.path, self.problems = path, problems
        lines = "\n".join(f"  {key}: {msg}" for key, msg in problems)
        super().__init__(f"{path} is not a valid journey definition:\n{lines}")


class InputError(UserError):
    """A file, row or request body cannot be read as given; the message names the file, row and field."""

    kind = "input"


class WorkspaceError(UserError, RuntimeError):
    """The workspace cannot serve the request now: it does not exist, or another process holds it."""

    http_status = 409
    kind = "workspace"


class NotEnoughData(JourneymapError, ValueError):
    """The data cannot support the answer. `add` says what to add (data, or a section of journeymap.yml)."""

    exit_code = 3
    http_status = 409
    kind = "not_enough_data"

    def __init__(self, message: str, add: str | None = None):
        self.reason, self.add = message, add
        super().__init__(f"{message}: add {add}" if add else message)


class MissingExtra(JourneymapError, ImportError):
    """An optional extra is not installed (`pip install 'journeymap[embeddings]'`); the message says how."""

    exit_code = 1
    http_status = 409
    kind = "missing_extra"


class InternalError(JourneymapError):
    """A bug: an error nobody meant to raise. Surfaces wrap unexpected exceptions in it."""

    exit_code = 70  # EX_SOFTWARE
    http_status = 500
    kind = "internal"


_PACKAGE = __file__.rsplit("/", 1)[0]


def raised_by_journeymap(exc: BaseException) -> bool:
    """Whether journeymap's own code raised `exc` (the innermost frame is in this package), as opposed to a
    library deep inside a call: a plain ValueError of ours carries a message written for the user, a
    library's ("needs samples of at least 2 classes") is a bug to report, never an answer.

    >>> try:
    ...     int("x")
    ... except ValueError as exc:
    ...     raised_by_journeymap(exc)
    False
    """
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename.startswith(_PACKAGE)


def problem(exc: JourneymapError) -> dict:
    """The JSON body every surface answers an error with: its kind and a one-line detail."""
    body = {"error": exc.kind, "detail": str(exc)}
    if isinstance(exc, OptionError) and exc.option:
        body["option"] = exc.option
    if isinstance(exc, DefinitionError):
        body["problems"] = [{"key": k, "message": m} for k, m in exc.problems]
    if isinstance(exc, NotEnoughData) and exc.add:
        body["add"] = exc.add
    return body


def closest(given: str, known, n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The known names `given` probably means, best first: one equal but for case, else difflib's closest
    (at most `n`). The one rule behind every "did you mean" (options, analyses, columns, events, settings).

    >>> closest("Email", ["email", "emails"]), closest("windw", ["window", "within"], n=2), closest("zzz", ["a"])
    (['email'], ['window'], [])
    """
    known = list(dict.fromkeys(str(k) for k in known if k is not None))
    same_case = [k for k in known if k.lower() == str(given).lower()]
    if same_case:
        return same_case[:1]
    lowered: dict[str, str] = {}
    for k in known:
        lowered.setdefault(k.lower(), k)
    return [lowered[c] for c in difflib.get_close_matches(str(given).lower(), list(lowered), n=n, cutoff=cutoff)]


def did_you_mean(given: str, known, n: int = 1, quote=repr) -> str | None:
    """'did you mean 'x'?' (or 'x' or 'y' with n > 1) for the closest known names; None when none is close.

    >>> did_you_mean("funels", ["funnel", "paths"]), did_you_mean("--windw", ["--window"], quote=str)
    ("did you mean 'funnel'?", 'did you mean --window?')
    """
    close = closest(given, known, n=n)
    return "did you mean " + " or ".join(quote(c) for c in close) + "?" if close else None
