"""The README's troubleshooting table and the one-line errors of the suite agree.

Each test that checks a one-line error passes it to ``listed_in_troubleshooting``, which
fails that test when no row of the table explains it; the last test of the session checks
that every row naming a message was met by some test."""

import os

import pytest

from conftest import TROUBLESHOOTING_MET, message_pattern, troubleshooting_rows


def test_capitals_and_ellipses_stand_for_any_text():
    pattern = message_pattern("two files for frame N: A and B: DIR")
    assert pattern.search("error: two files for frame 0: 0000000.jpg and 00000.jpg: /x/twice")
    assert not pattern.search("two files for frame 0: a.jpg: /x")


def test_the_table_names_messages():
    rows = troubleshooting_rows()
    assert len(rows) >= 40 and all(rows.values())


def test_every_troubleshooting_message_is_met_by_a_test(request):
    """Runs last (``pytest_collection_modifyitems``): only a whole run meets every row."""
    config = request.config
    whole = config.args_source == pytest.Config.ArgsSource.TESTPATHS and not config.option.keyword
    if not (whole or os.environ.get("SAM2FLOW_CHECK_TROUBLESHOOTING")):
        pytest.skip("needs the whole suite (make test), or SAM2FLOW_CHECK_TROUBLESHOOTING=1")
    unmet = sorted(set(troubleshooting_rows()) - TROUBLESHOOTING_MET)
    assert not unmet, "rows no test met:\n" + "\n".join(unmet)
