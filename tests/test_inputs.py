"""Which of a video's own files a job declares as input (sam2flow.plan.inputs)."""

from sam2flow.plan.inputs import tracked


def test_files_that_exist_or_that_a_rule_makes_are_inputs_and_a_missing_one_is_not(tmp_path):
    video = tmp_path / "m1.mp4"
    video.touch()
    gone = tmp_path / "m2.mp4"
    made = "resources/demo/demo.mp4"
    assert tracked([video, gone, made], made_by_rules=[made]) == [str(video), made]
    assert tracked([made]) == []


def test_a_path_with_a_brace_is_never_an_input(tmp_path):
    """Snakemake would read it as a wildcard and stop the plan of every video."""
    for name in ("cage{3}.mp4", "{cage}.mp4", "a}.mp4", "b{.mp4"):
        (tmp_path / name).touch()
        assert tracked([tmp_path / name]) == [], name
        assert tracked([name], made_by_rules=[name]) == [], name
    for name in ("cage (3) [a].mp4", "MouseX_DLC.csv"):
        (tmp_path / name).touch()
        assert tracked([tmp_path / name]) == [str(tmp_path / name)]
