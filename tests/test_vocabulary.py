"""One owner for the shared words and defaults (``sam2flow.vocabulary``): the config file,
the command line and the library's own defaults all say what it says."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import yaml

from sam2flow import vocabulary as v
from sam2flow.cli import build_parser
from sam2flow.extract import extract_batches
from sam2flow.memory import GuardConfig
from sam2flow.models import ModelOptions
from sam2flow.prompts import PromptOptions
from sam2flow.record import ATTEMPT_SCHEMA, SCHEMA

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.yaml").read_text())


def defaults_of(command: str) -> dict:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {a.dest: a.default for a in sub._actions}


def test_the_config_file_holds_the_librarys_defaults():
    assert (CONFIG["batch_size"], CONFIG["jpeg_quality"]) == (
        v.DEFAULT_BATCH_SIZE,
        v.DEFAULT_QUALITY,
    )
    assert CONFIG["frame_decoder"] == v.DECODERS[0]
    assert CONFIG["prompts"]["likelihood_cutoff"] == v.DEFAULT_CUTOFF
    assert ModelOptions.from_config(CONFIG["model"]) == ModelOptions()
    memory = CONFIG["memory"]
    assert (memory["memory_threshold"], memory["min_chunk"]) == (
        v.DEFAULT_THRESHOLD,
        v.DEFAULT_MIN_CHUNK,
    )
    assert (memory["sizing_file"], memory["sizing_grow_after"]) == (
        v.DEFAULT_SIZING_FILE,
        v.DEFAULT_GROW_AFTER,
    )


def test_the_command_line_holds_the_librarys_defaults():
    segment = defaults_of("segment")
    model = {f.name: f.default for f in fields(ModelOptions)}
    assert {("model" if k == "name" else k): d for k, d in model.items()} == {
        k: segment[k] for k in ("model", *list(model)[1:])
    }
    guard = GuardConfig()
    assert (segment["memory_threshold"], segment["min_chunk"], segment["sizing_grow_after"]) == (
        guard.memory_threshold,
        guard.min_chunk,
        guard.sizing_grow_after,
    )
    assert segment["sizing_file"] == v.DEFAULT_SIZING_FILE
    assert segment["likelihood_cutoff"] == PromptOptions().cutoff == v.DEFAULT_CUTOFF
    assert segment["frame_decoder"] == v.DECODERS[0]
    extract = defaults_of("extract")
    library = extract_batches.__defaults__
    assert (extract["batch_size"], extract["quality"]) == library[:2]


def test_the_record_schema_speaks_the_same_words():
    props = SCHEMA["properties"]
    assert props["status"]["enum"] == list(v.BATCH_STATUSES)
    assert props["frame_status"]["propertyNames"]["enum"] == list(v.FRAME_STATUSES)
    assert ATTEMPT_SCHEMA["properties"]["level"]["enum"] == list(v.LEVELS)


def test_batch_names_past_9999_keep_the_videos_order_and_the_workflows_pattern():
    from sam2flow.frame_folders import batch_name

    names = [batch_name(i) for i in (10000, 2, 9999, 123456)]
    assert v.batches_in_order(names) == ["0002", "9999", "10000", "123456"]
    assert all(re.fullmatch(v.BATCH_PATTERN, name) for name in names)


def test_the_batch_pattern_is_read_whole_by_snakemake_as_a_constraint():
    """``\\d{4,}`` was not: Snakemake's wildcard syntax nests only ``{m}`` and ``{m,n}``,
    and the segment rule then matched no batch at all."""
    from snakemake.io import regex_from_filepattern

    pattern = regex_from_filepattern(f"results/v/batches/{{batch,{v.BATCH_PATTERN}}}/x")
    assert re.fullmatch(pattern, "results/v/batches/12000/x")
    assert not re.fullmatch(pattern, "results/v/batches/120/x")
