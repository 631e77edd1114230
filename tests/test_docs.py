"""Every `>>>` example runs: the docstrings of every module of the installed package, and the markdown
under docs/ and README.md (as in sqlglot's tests/test_docs.py). One test per module and per file.

Modules and files are found at collection time (pkgutil.walk_packages, Path.rglob), so a new module's
examples run without an edit here; `test_every_module_with_examples_runs_them` fails if a module's
`>>>` lines would not be found by doctest (in a comment, a non-docstring string, an object doctest skips).
An example that truly cannot run (a server, files that are not there) says `# doctest: +SKIP`.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import importlib.util
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

import journeymap

ROOT = Path(__file__).resolve().parents[1]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

IMPORT_ERRORS: dict[str, BaseException] = {}


def _record(name: str) -> None:
    IMPORT_ERRORS[name] = sys.exc_info()[1]  # a package that failed to import while walking: its test reports it


MODULES = sorted(
    {journeymap.__name__}
    | {info.name for info in pkgutil.walk_packages(journeymap.__path__, f"{journeymap.__name__}.", onerror=_record)}
    | set(IMPORT_ERRORS)
)
DOCS = sorted(p.relative_to(ROOT).as_posix() for p in [*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"] if p.is_file())


def _prompts(source: str) -> int:
    """Lines with `>>>`: in this package each one is an example, wherever it stands (a comment too)."""
    return sum(">>>" in line for line in source.splitlines())


def _source(name: str) -> str:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin and spec.origin.endswith(".py") else ""


def _import(name: str) -> ModuleType:
    """The module, or a skip with the reason when it needs an optional extra that is not installed."""
    if name in IMPORT_ERRORS:
        error = IMPORT_ERRORS[name]
    else:
        try:
            return importlib.import_module(name)
        except ImportError as e:
            error = e
    missing = getattr(error, "name", None) or ""
    if isinstance(error, ModuleNotFoundError) and missing and missing.partition(".")[0] != journeymap.__name__:
        pytest.skip(f"{name} needs {missing!r}, not installed (an optional extra)")
    raise error


def _threads_limited():
    """One BLAS/OpenMP thread while examples run: on a busy 2-core machine, scikit-learn's OpenMP pool
    (the churn model's gradient boosting) is ~10x slower oversubscribed. The
    examples print rounded numbers that do not depend on it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _run(tests: list[doctest.DocTest]) -> tuple[int, str]:
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    with _threads_limited():
        for test in tests:
            runner.run(test, out=report.append)
    return runner.failures, "".join(report)


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name: str) -> None:
    if name.rpartition(".")[2] == "__main__":  # importing it runs the CLI
        assert not _prompts(_source(name)), f"{name} runs the CLI on import: put its examples elsewhere"
        pytest.skip(f"{name}: importing it runs the CLI; it has no examples")
    module = _import(name)
    failures, report = _run(doctest.DocTestFinder().find(module))
    if failures:
        pytest.fail(f"{failures} failing example(s) in {name}:\n{report}", pytrace=False)


@pytest.mark.parametrize("path", DOCS)
def test_markdown_examples(path: str) -> None:
    # A fence line ends an example's expected output: blank it (line numbers stay right).
    text = re.sub(r"^[ \t]*(```|~~~).*$", "", (ROOT / path).read_text(encoding="utf-8"), flags=re.M)
    test = doctest.DocTestParser().get_doctest(text, {"__name__": path}, path, str(ROOT / path), 0)
    failures, report = _run([test])
    if failures:
        pytest.fail(f"{failures} failing example(s) in {path}:\n{report}", pytrace=False)


def test_every_module_with_examples_runs_them() -> None:
    """The modules whose examples run are exactly the modules with `>>>` in their source, and in each
    module doctest finds every `>>>` line (an example it cannot find would never run)."""
    with_prompts, executed, unfound = set(), set(), {}
    for name in MODULES:
        prompts = _prompts(_source(name))
        if prompts:
            with_prompts.add(name)
        if name.rpartition(".")[2] == "__main__":
            continue
        try:
            module = importlib.import_module(name)
        except ImportError:
            with_prompts.discard(name)  # test_module_examples skips it with the reason
            continue
        examples = [e for t in doctest.DocTestFinder().find(module) for e in t.examples]
        if any(not e.options.get(doctest.SKIP) for e in examples):
            executed.add(name)
        if len(examples) != prompts:
            unfound[name] = f"{prompts} '>>>' lines, {len(examples)} examples found"
    assert not unfound, f"'>>>' lines doctest does not find, so never run: {unfound}"
    assert len(executed) == len(with_prompts), (
        f"modules with '>>>' but no example that runs (all skipped?): {sorted(with_prompts - executed)}")
    assert executed, "no module has examples: is the package found?"
