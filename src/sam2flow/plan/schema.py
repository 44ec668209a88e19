"""Schema checks of the workflow's config and sample sheet: one line naming the key.

Snakemake's own ``validate`` prints the whole schema with a traceback; a user needs the key,
the value and what is allowed.
"""

from __future__ import annotations

import math
from pathlib import Path

import jsonschema
import yaml

from ..errors import UserError


def schema_problem(data: dict, schema_file: str | Path | dict) -> str | None:
    """``"memory.min_chunk: 0 is less than the minimum of 1"``, or ``None`` when ``data``
    fits the schema.

    >>> import tempfile; f = Path(tempfile.mkdtemp()) / "s.yaml"
    >>> _ = f.write_text("properties: {a: {properties: {b: {minimum: 1}}}}")
    >>> schema_problem({"a": {"b": 0}}, f)
    'a.b: 0 is less than the minimum of 1'

    A pattern's description is said rather than its regular expression:

    >>> schema_problem({"b": "x"}, {"properties": {"b": {"pattern": "^$", "description": "empty"}}})
    "b: 'x' is not empty"

    YAML's ``.nan`` and ``.inf`` are numbers no key takes:

    >>> schema_problem({"a": {"b": [0, float("nan")]}}, {})
    'a.b.1: nan is not a finite number'
    """
    schema = (
        schema_file
        if isinstance(schema_file, dict)
        else yaml.safe_load(Path(schema_file).read_text())
    )
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(data)
    )
    if error is None:
        return _not_finite(data)
    where = ".".join(str(p) for p in error.absolute_path) or "top level"
    message = error.message
    if error.validator == "pattern" and "description" in error.schema:  # not the regex
        message = f"{error.instance!r} is not {error.schema['description']}"
    message = message if len(message) <= 300 else message[:297] + "..."
    return f"{where}: {message}"


def _not_finite(data, where: tuple = ()) -> str | None:
    """The first NaN or infinite number in ``data``, named by where it is. JSON Schema cannot
    refuse NaN (every comparison with it is false, so it passes every bound), and a NaN
    likelihood cutoff would drop every point without a word."""
    if isinstance(data, float) and not math.isfinite(data):
        return f"{'.'.join(map(str, where)) or 'top level'}: {data} is not a finite number"
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list | tuple):
        items = enumerate(data)
    else:
        return None
    for key, value in items:
        if found := _not_finite(value, (*where, key)):
            return found
    return None


#: The workflow's config schema: the command line checks the options it shares with the
#: config against it too, so that both accept exactly the same values.
CONFIG_SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


def check_options(section: str, options: dict, schema_file: str | Path = CONFIG_SCHEMA) -> None:
    """Command-line ``options`` (``None``: not given) that config section ``section`` also
    sets must fit that section's schema; the error names the option and the config key.

    >>> check_options("prompts", {"likelihood_cutoff": 5})
    Traceback (most recent call last):
    ...
    sam2flow.errors.UserError: --likelihood-cutoff (config prompts.likelihood_cutoff): 5 is \
greater than the maximum of 1: give a value the config allows (README.md lists each key)
    """
    schema = yaml.safe_load(Path(schema_file).read_text())["properties"][section]
    schema = {k: v for k, v in schema.items() if k != "required"}
    given = {k: v for k, v in options.items() if v is not None}
    problem = schema_problem(given, schema)
    if problem:
        key, _, why = problem.partition(": ")
        raise UserError(
            f"--{key.replace('_', '-')} (config {section}.{key}): {why}",
            None,
            "give a value the config allows (README.md lists each key)",
        )


def check_config(config: dict, schema_file: str | Path) -> None:
    """The workflow's config must fit its schema (every key known, every value allowed)."""
    problem = schema_problem(config, schema_file)
    if problem:
        raise UserError(
            f"config key {problem}",
            "config/config.yaml (or --config)",
            "fix that key; README.md lists every key and its allowed values",
        )


def check_sheet_rows(
    rows: list[dict], schema_file: str | Path, path: str | Path, lines: list[int]
) -> None:
    """Each sample-sheet row must fit the sheet's schema; the error names row (``lines``:
    each row's line in the file) and column."""
    for line, row in zip(lines, rows, strict=True):
        problem = schema_problem(row, schema_file)
        if problem:
            raise UserError(f"row {line}, column {problem}", path, "fix that cell")
