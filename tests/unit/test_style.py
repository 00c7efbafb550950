"""Style is a test (docs/STYLE.md): function length, no float money or clock in the domain,
a docstring on every module, and a small public surface for the domain's money type."""

from __future__ import annotations

import ast
import re
import statistics
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "lendsafe"
DOMAIN = SOURCE / "domain"
FUNCTION_LINES_MAX = 70
FUNCTION_LINES_MEDIAN_MAX = 15


def _python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "migrations" not in p.parts)


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text("utf-8"))
    return [
        (node.name, (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_no_function_is_longer_than_the_hard_limit() -> None:
    too_long = [f"{path.relative_to(SOURCE)}:{name} ({lines} lines)"
                for path in _python_files(SOURCE) for name, lines in _functions(path)
                if lines > FUNCTION_LINES_MAX]
    assert not too_long, f"functions over {FUNCTION_LINES_MAX} lines: {too_long}"


def test_median_function_length() -> None:
    lengths = [lines for path in _python_files(SOURCE) for _, lines in _functions(path)]
    assert statistics.median(lengths) <= FUNCTION_LINES_MEDIAN_MAX


CLOCK_OR_RANDOM = r"datetime\.now\(|date\.today\(|time\.time\(|random\."
NO_CLOCK = re.compile(CLOCK_OR_RANDOM)
NO_FLOAT_NO_CLOCK = re.compile(r"\bfloat\(|" + CLOCK_OR_RANDOM)


def test_the_domain_has_no_float_and_reads_no_clock() -> None:
    offenders = []
    for path in _python_files(DOMAIN):
        # scoring computes probabilities and statistics in float64 by design; money never
        # enters it. origination/disclosure.py searches a rate in float64 and returns only a
        # Decimal proven equal (in integers) to the exact 40-digit answer, or nothing. The
        # clock and randomness bans apply everywhere in the domain.
        floats_allowed = "scoring" in path.parts or path.name == "disclosure.py"
        text_rule = NO_CLOCK if floats_allowed else NO_FLOAT_NO_CLOCK
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            if text_rule.search(code):
                offenders.append(f"{path.relative_to(SOURCE)}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_every_module_has_a_docstring() -> None:
    missing = [str(path.relative_to(SOURCE)) for path in _python_files(SOURCE)
               if ast.get_docstring(ast.parse(path.read_text("utf-8"))) is None]
    assert not missing, missing
