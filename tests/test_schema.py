"""The workflow's config schema: every key of config/config.yaml, given a value of the wrong
kind or out of its range, is named in one line before any job runs; and a value the schema
allows is one the jobs accept (else every batch job would fail on it, one by one)."""

from __future__ import annotations

import pytest
import yaml

from sam2flow.errors import UserError
from sam2flow.models import ModelOptions, build_model
from sam2flow.plan.schema import CONFIG_SCHEMA, check_config, check_options, schema_problem

from conftest import ROOT

CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SCHEMA = yaml.safe_load(CONFIG_SCHEMA.read_text())


def leaves(tree: dict, where: tuple = ()):
    """``(path of keys, value)`` of each key that holds a value, not a section."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, (*where, key))
        else:
            yield (*where, key), value


def wrong_kind(value):
    """A value of another kind than ``value``'s, as a slip in YAML gives: ``yes please``
    for a switch, ``ten`` for a number, one name for a list, a number for a name."""
    if isinstance(value, bool):
        return "yes please"
    if isinstance(value, int | float):
        return "ten"
    if isinstance(value, list):
        return "snout"
    if value is None:  # a number or a name that may be left out
        return ["a", "list"]
    return 12


def with_value(keys: tuple, value) -> dict:
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    section = config
    for key in keys[:-1]:
        section = section[key]
    section[keys[-1]] = value
    return config


def named(config: dict) -> str:
    with pytest.raises(UserError) as info:
        check_config(config, CONFIG_SCHEMA)
    return str(info.value)


def test_the_shipped_config_fits_its_schema():
    check_config(CONFIG, CONFIG_SCHEMA)


@pytest.mark.parametrize("keys", [k for k, _ in leaves(CONFIG)], ids=".".join)
def test_a_value_of_the_wrong_kind_names_its_key(keys):
    value = dict(leaves(CONFIG))[keys]
    message = named(with_value(keys, wrong_kind(value)))
    assert message.startswith(f"config key {'.'.join(keys)}: "), message


def bounded(schema: dict, where: tuple = ()):
    """``(keys, a value just outside the bound)`` for each bound of the schema's keys."""
    for key, rule in schema.get("properties", {}).items():
        keys = (*where, key)
        yield from bounded(rule, keys)
        step = 1 if "integer" in rule.get("type", []) else 0.5
        if "minimum" in rule:
            yield keys, rule["minimum"] - step
        if "exclusiveMinimum" in rule:
            yield keys, rule["exclusiveMinimum"]
        if "maximum" in rule:
            yield keys, rule["maximum"] + step
        if "multipleOf" in rule:
            yield keys, rule["multipleOf"] * 5 + 1


BOUNDS = [(keys, bad) for keys, bad in bounded(SCHEMA) if keys[0] != "demo"]


@pytest.mark.parametrize("keys, bad", BOUNDS, ids=[".".join(k) + f"={b}" for k, b in BOUNDS])
def test_a_value_out_of_its_range_names_its_key(keys, bad):
    message = named(with_value(keys, bad))
    assert message.startswith(f"config key {'.'.join(keys)}: {bad} "), message


def test_every_bounded_key_of_the_config_is_tried():
    assert {keys for keys, _ in BOUNDS} >= {
        ("batch_size",),
        ("memory", "memory_threshold"),
        ("model", "image_size"),
        ("resources", "segment_batch", "threads"),
    }


def test_an_image_size_the_schema_allows_is_one_the_model_builds():
    rule = SCHEMA["properties"]["model"]["properties"]["image_size"]
    for size in (rule["minimum"], rule["minimum"] + rule["multipleOf"]):
        check_config(with_value(("model", "image_size"), size), CONFIG_SCHEMA)
        model = build_model(ModelOptions(weights="random", image_size=size, device="cpu"))
        assert model.image_size == size


def test_a_config_violation_is_said_in_full():
    assert named(with_value(("batch_size",), 0)) == (
        "config key batch_size: 0 is less than the minimum of 1: config/config.yaml (or "
        "--config): fix that key; README.md lists every key and its allowed values"
    )


def test_a_command_line_option_is_checked_against_its_config_key_alone():
    """The section's other required keys are not asked of the command line."""
    check_options("memory", {"min_chunk": 5, "monitoring": None})
    with pytest.raises(UserError) as info:
        check_options("memory", {"sizing_grow_after": 0, "min_chunk": None})
    assert str(info.value) == (
        "--sizing-grow-after (config memory.sizing_grow_after): 0 is less than the minimum "
        "of 1: give a value the config allows (README.md lists each key)"
    )


def test_what_breaks_a_schema_is_named_where_it_is_in_one_line():
    assert schema_problem({"a": 1}, {"properties": {"a": {"type": "string"}}}) == (
        "a: 1 is not of type 'string'"
    )
    assert schema_problem({}, {"required": ["videos"]}) == (
        "top level: 'videos' is a required property"
    )
    described = {"properties": {"b": {"type": "integer", "description": "a count"}}}
    assert schema_problem({"b": "x"}, described) == "b: 'x' is not of type 'integer'"


@pytest.mark.parametrize("length, cut", [(300, False), (301, True)])
def test_a_message_past_300_characters_is_cut(length, cut):
    """jsonschema lists every allowed value; a long list would swamp the line."""
    allowed = "x" * (length - len("'y' is not one of ['']"))
    problem = schema_problem({"b": "y"}, {"properties": {"b": {"enum": [allowed]}}})
    message = f"'y' is not one of [{allowed!r}]"
    assert len(message) == length
    assert problem == "b: " + (message[:297] + "..." if cut else message)


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


NUMBERS = [
    keys
    for keys, value in leaves(CONFIG)
    if is_number(value) or (isinstance(value, list) and value and all(map(is_number, value)))
]


@pytest.mark.parametrize("keys", NUMBERS, ids=".".join)
@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf"])
def test_a_number_that_is_not_finite_names_its_key(keys, text):
    """YAML's ``.nan`` passes every bound of JSON Schema (each comparison with it is false):
    a NaN likelihood cutoff would have dropped every point without a word."""
    value, bad = dict(leaves(CONFIG))[keys], yaml.safe_load(text)
    where = ".".join(keys)
    if isinstance(value, list):  # its first item
        value, where = [bad, *value[1:]], where + ".0"
    else:
        value = bad
    message = named(with_value(keys, value))
    assert message.startswith(f"config key {where}: {bad} "), message


def test_every_number_of_the_config_is_tried_with_nan():
    assert {keys for keys in NUMBERS} >= {
        ("prompts", "likelihood_cutoff"),
        ("prompts", "offset"),
        ("memory", "memory_threshold"),
        ("batch_size",),
    }


def test_a_finite_number_among_a_lists_items_is_not_taken_for_one_that_is_not():
    config = with_value(("prompts", "offset"), [0, float("nan")])
    assert named(config).startswith("config key prompts.offset.1: nan is not a finite number")
    assert schema_problem(float("inf"), {}) == "top level: inf is not a finite number"
