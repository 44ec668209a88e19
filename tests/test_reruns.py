"""Which batches a run redoes: the segment_batch parameter, over a sequence of runs."""

from sam2flow.plan.reruns import listed_skipped, parse_rerun, rerun_value
from sam2flow.report import skipped_table


def test_a_batch_still_skipped_gets_a_new_value_at_each_rerun_and_keeps_it_otherwise():
    record = {"status": "skipped"}
    values = []
    for _ in range(3):  # three rerun_skipped runs that all end skipped again
        value = rerun_value(record, None, True, "offload")
        values.append(value)
        record = {"status": "skipped", "rerun_strategy": value}
    assert values == ["offload#1", "offload#2", "offload#3"]
    assert rerun_value(record, 3, False, "offload") == "offload#3"  # a plain run: unchanged
    ok = {"status": "ok", "rerun_strategy": "offload#3"}
    assert rerun_value(ok, None, True, "offload") == "offload#3"  # done: never again


def test_the_value_at_job_start_equals_the_value_when_the_dag_was_built(tmp_path):
    """At job start the record is gone; skipped.tsv gives the same round."""
    record = {"video": "v", "batch": "0003", "status": "skipped", "rerun_strategy": "chunked#2"}
    record |= {"skipped_ranges": [[0, 9]], "skip_reasons": ["oom"]}
    skipped_table([record]).to_csv(tmp_path / "skipped.tsv", sep="\t", index=False)
    listed = listed_skipped(tmp_path / "skipped.tsv")
    assert listed == {("v", "0003"): 2}
    at_dag = rerun_value(record, listed[("v", "0003")], True, "chunked")
    at_start = rerun_value(None, listed[("v", "0003")], True, "chunked")
    assert at_dag == at_start == "chunked#3" and parse_rerun(at_start) == ("chunked", 3)


def test_a_skipped_tsv_from_before_reruns_counts_none(tmp_path):
    (tmp_path / "skipped.tsv").write_text("video\tbatch\tfirst_frame\nv\t0000\t0\n")
    assert listed_skipped(tmp_path / "skipped.tsv") == {("v", "0000"): 0}
    assert listed_skipped(tmp_path / "none.tsv") == {}


def test_which_batches_have_their_own_prompt_follows_the_configured_likelihood_cutoff(tmp_path):
    """Points at likelihood 0.5 on frame 15 only: batch 0001 has its own prompt under a
    cutoff of 0.4, and none under DeepLabCut's default 0.6 (it then starts from 0000's
    masks)."""
    from test_alignment import dlc_file

    from sam2flow.plan.carry import own_prompt_batches
    from sam2flow.prompts import PromptOptions

    dlc = dlc_file(tmp_path / "p.csv", 20, {3: 0.9, 15: 0.5}, 1)
    batches = {"0000": [0, 9], "0001": [10, 19]}
    assert own_prompt_batches(batches, PromptOptions(prompts_file=dlc, cutoff=0.4)) == {
        "0000",
        "0001",
    }
    assert own_prompt_batches(batches, PromptOptions(prompts_file=dlc, cutoff=0.6)) == {"0000"}
    assert own_prompt_batches(batches, PromptOptions(prompts_file=dlc)) == {"0000"}


def test_a_rerun_value_reads_back_as_its_strategy_and_round():
    assert parse_rerun("chunked#12") == ("chunked", 12)
    assert parse_rerun("offload") == ("offload", 0)
    assert parse_rerun(None) == ("", 0) and parse_rerun("") == ("", 0)


def test_names_in_skipped_tsv_stay_text_and_an_empty_rerun_count_is_none(tmp_path):
    path = tmp_path / "skipped.tsv"
    path.write_text("video\tbatch\treruns\n007\t0003\t\n007\t0004\t2\nNA\t0001\t1\n")
    assert listed_skipped(path) == {("007", "0003"): 0, ("007", "0004"): 2, ("NA", "0001"): 1}


def test_a_batch_never_run_is_not_rerun_and_a_listed_one_counts_from_its_listing():
    assert rerun_value(None, None, True, "offload") == ""
    assert rerun_value(None, 0, True, "chunked") == "chunked#1"
    assert rerun_value({"status": "skipped"}, None, True, "same") == "same#1"
    assert rerun_value({"status": "ok", "rerun_strategy": ""}, None, True, "same") == ""
    # a record's own count wins over the listing's (the listing may be older)
    assert rerun_value({"status": "skipped", "rerun_strategy": "same#4"}, 1, True, "x") == "x#5"
