"""Schema checks of the workflow's config and sample sheet: one line naming the key.

Snakemake's own ``validate`` prints the whole schema with a traceback; a user needs the key,
the value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from .errors import UserError


def schema_problem(data: dict, schema_file: str | Path) -> str | None:
    """``"memory.min_chunk: 0 is less than the minimum of 1"``, or ``None`` when ``data``
    fits the schema.

    >>> import tempfile; f = Path(tempfile.mkdtemp()) / "s.yaml"
    >>> _ = f.write_text("properties: {a: {properties: {b: {minimum: 1}}}}")
    >>> schema_problem({"a": {"b": 0}}, f)
    'a.b: 0 is less than the minimum of 1'
    """
    schema = yaml.safe_load(Path(schema_file).read_text())
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(data)
    )
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path) or "top level"
    message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
    return f"{where}: {message}"


def check_config(config: dict, schema_file: str | Path) -> None:
    """The workflow's config must fit its schema (every key known, every value allowed)."""
    problem = schema_problem(config, schema_file)
    if problem:
        raise UserError(
            f"config key {problem}",
            "config/config.yaml (or --config)",
            "fix that key; README.md lists every key and its allowed values",
        )


def check_sheet_rows(rows: list[dict], schema_file: str | Path, path: str | Path) -> None:
    """Each sample-sheet row must fit the sheet's schema; the error names row and column."""
    for line, row in enumerate(rows, 2):
        problem = schema_problem(row, schema_file)
        if problem:
            raise UserError(f"row {line}, column {problem}", path, "fix that cell")
