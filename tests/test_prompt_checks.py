"""Prompts checked against the video before any frame is segmented, and the prompt a batch
carries from the one before it: fast tests, each through the error or the prompt returned."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from test_outputs import H, W, bar, write_batch

from sam2flow.errors import UserError, brief
from sam2flow.prompts import (
    BatchPrompt,
    ObjectPrompt,
    PromptOptions,
    carried_prompt,
    check_carried,
    check_prompt,
    check_prompt_frame,
    last_masks,
    manual_prompt,
    parse_box,
    parse_points,
    prompt_for_batch,
    read_mask_png,
)

from conftest import listed_in_troubleshooting


def points(*xy) -> ObjectPrompt:
    return ObjectPrompt(points=np.asarray(xy, dtype=np.float32), labels=np.ones(len(xy)))


def error(prompt: BatchPrompt, height=480, width=640, frames=100) -> str:
    with pytest.raises(UserError) as info:
        check_prompt(prompt, height, width, frames)
    return str(info.value)


@pytest.mark.parametrize("xy", [(0, 0), (640, 480), (639.5, 0.5), (320, 240)])
def test_points_on_the_frame_and_its_edges_pass(xy):
    check_prompt(BatchPrompt(frame=0, objects={1: points(xy)}), 480, 640, 100)


@pytest.mark.parametrize(
    "xy", [(-0.5, 10), (640.5, 10), (10, -1), (10, 480.5), (np.nan, 10), (10, np.inf)]
)
def test_a_point_off_the_frame_names_object_frame_point_and_frame_size(xy):
    text = error(BatchPrompt(frame=7, objects={3: points((5, 5), xy)}, source="p.csv"))
    assert f"object 3: point ({xy[0]:g}, {xy[1]:g}) on frame 7 is outside the 640x480" in text
    assert "p.csv" in text and "prompts.scale and offset" in text


@pytest.mark.parametrize("box", [(-1, 0, 10, 10), (0, 0, 641, 10), (0, 0, 10, 481)])
def test_a_box_corner_off_the_frame_is_named(box):
    obj = ObjectPrompt(box=np.asarray(box, dtype=np.float32))
    text = error(BatchPrompt(frame=0, objects={2: obj}))
    x, y = (box[0], box[1]) if box[0] < 0 else (box[2], box[3])
    assert f"object 2: box corner ({x:g}, {y:g}) on frame 0" in text


def test_points_and_box_of_one_object_are_both_checked():
    obj = points((5, 5))
    obj.box = np.asarray([0, 0, 700, 10], dtype=np.float32)
    assert "box corner (700, 10)" in error(BatchPrompt(frame=0, objects={1: obj}))


def test_a_point_off_the_frame_on_an_anchor_frame_names_that_frame():
    prompt = BatchPrompt(frame=0, objects={1: points((5, 5))}, anchors={40: {2: points((5, 900))}})
    assert "object 2: point (5, 900) on frame 40" in error(prompt)


def test_a_mask_of_another_size_names_both_sizes():
    obj = ObjectPrompt(mask=np.zeros((480, 600), dtype=bool))
    text = error(BatchPrompt(frame=0, objects={1: obj}, source="m.png"))
    assert "mask is 600x480, the frames 640x480" in text and "m.png" in text
    check_prompt(
        BatchPrompt(frame=0, objects={1: ObjectPrompt(mask=np.zeros((480, 640)))}), 480, 640, 1
    )


@pytest.mark.parametrize("source", ["config", ""])
def test_a_prompt_from_the_config_names_no_file(source):
    with pytest.raises(UserError) as info:
        check_prompt(BatchPrompt(frame=0, objects={1: points((-5, 5))}, source=source), 4, 4, 1)
    assert info.value.path is None


def test_no_prompt_passes():
    check_prompt(None, 480, 640, 100)


@pytest.mark.parametrize("frame", [-1, 100, 250])
def test_a_prompt_frame_the_video_lacks_names_its_frames(frame):
    text = error(BatchPrompt(frame=frame, objects={1: points((5, 5))}))
    assert f"prompt frame {frame} is outside the video (frames 0-99)" in text


def test_the_last_frame_is_a_prompt_frame_and_unknown_length_accepts_any_from_0():
    check_prompt_frame(99, 100)
    check_prompt_frame(10**6, None)
    with pytest.raises(UserError, match=r"frames 0 or more"):
        check_prompt_frame(-1, None)


def save_batch(tmp_path, frames=(10, 11, 12), objects=(1, 2), status=None):
    write_batch(tmp_path / "b", list(frames), list(objects))
    path = tmp_path / "b" / "masks.npz"
    if status is not None:
        data = dict(np.load(path))
        data["status"] = data["status"].astype("<U16")
        data["status"][-1] = status
        np.savez_compressed(path, **data)
    return path


def test_last_masks_are_the_last_frames_masks_of_every_object(tmp_path):
    frame, objects, masks, status = last_masks(save_batch(tmp_path, objects=(4, 9)))
    assert (frame, objects, status) == (12, [4, 9], ["ok", "ok"])
    assert masks.shape == (2, H, W) and masks.dtype == bool
    assert np.array_equal(masks[0], bar(12 + 4)) and np.array_equal(masks[1], bar(12 + 9))


def test_a_carried_prompt_lies_on_the_frame_before_the_batch_with_its_masks(tmp_path):
    path = save_batch(tmp_path)
    prompt = carried_prompt(path, 13, tmp_path / "12.jpg")
    assert prompt.frame == 12 and prompt.image == tmp_path / "12.jpg"
    assert sorted(prompt.objects) == [1, 2] and str(path) in prompt.source
    assert np.array_equal(prompt.objects[2].mask, bar(14)) and prompt.missing is None


def test_an_empty_object_is_carried_and_one_without_prompt_is_not(tmp_path):
    prompt = carried_prompt(save_batch(tmp_path, status=["empty", "no_prompt"]), 13, "12.jpg")
    assert sorted(prompt.objects) == [1]


def test_nothing_to_carry_is_no_prompt(tmp_path):
    assert carried_prompt(save_batch(tmp_path, status=["no_prompt", "no_prompt"]), 13, "x") is None


def test_a_skipped_last_frame_carries_no_objects_and_says_why(tmp_path):
    prompt = carried_prompt(save_batch(tmp_path, status=["ok", "skipped_oom"]), 13, "12.jpg")
    assert prompt.objects == {} and "last frame 12 was skipped" in prompt.missing


def test_carrying_from_a_batch_that_does_not_end_just_before_fails(tmp_path):
    with pytest.raises(UserError, match=r"previous batch ends on frame 12, not 14"):
        carried_prompt(save_batch(tmp_path), 15, "x.jpg")


def test_carrying_without_the_image_of_the_carried_frame_fails(tmp_path):
    with pytest.raises(UserError, match=r"the JPEG of frame 12"):
        carried_prompt(save_batch(tmp_path), 13, None)


def test_unreadable_carried_masks_name_the_file(tmp_path):
    bad = tmp_path / "masks.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UserError) as info:
        last_masks(bad)
    with pytest.raises(Exception) as numpy:  # what numpy itself says, in its last line
        np.load(bad)
    assert str(info.value) == (
        f"cannot read the carried masks ({brief(numpy.value)}): {bad}: rerun the previous batch"
    )


def test_a_batch_without_its_own_prompt_takes_the_carried_one(tmp_path):
    prompt = prompt_for_batch(
        [13, 14], PromptOptions(carry_from=save_batch(tmp_path), carry_image="12.jpg")
    )
    assert prompt.frame == 12 and sorted(prompt.objects) == [1, 2]


def test_a_batch_with_its_own_prompt_does_not_carry(tmp_path):
    prompt = prompt_for_batch(
        [13, 14], PromptOptions(points="5,5", carry_from=save_batch(tmp_path), carry_image="12.jpg")
    )
    assert prompt.frame == 13 and prompt.source != f"carried from {tmp_path}"


def test_a_manual_prompt_on_a_frame_outside_the_batch_means_no_prompt():
    assert prompt_for_batch([13, 14], PromptOptions(points="5,5", prompt_frame=20)) is None
    assert prompt_for_batch([13, 14], PromptOptions(points="5,5", prompt_frame=14)).frame == 14


def test_points_with_labels_separated_by_semicolons_or_spaces():
    pts, labels = parse_points(" 210,350; 300.5,400,0  12,7,1 ;")
    assert pts.tolist() == [[210, 350], [300.5, 400], [12, 7]] and pts.dtype == np.float32
    assert labels.tolist() == [1, 0, 1] and labels.dtype == np.int32


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,2;NaN,3", "points '1,2;NaN,3' must be finite numbers"),
        ("1,Inf", "points '1,Inf' must be finite numbers"),
        ("1,2,1,4", "point '1,2,1,4' must be X,Y or X,Y,LABEL"),
        ("5", "point '5' must be X,Y or X,Y,LABEL"),
        ("1,2,2", "point '1,2,2': label must be 1 (object) or 0 (background)"),
        (" ; ", "no points in ' ; '"),
    ],
)
def test_bad_points_say_what_is_wrong(text, message):
    with pytest.raises(ValueError) as info:
        parse_points(text)
    assert str(info.value) == message


def test_spaces_around_a_comma_are_part_of_the_number_not_a_separator():
    """As tools print coordinates: ``(210, 350)``."""
    pts, labels = parse_points("210, 350 ; 300 ,400 , 0 12,7")
    assert pts.tolist() == [[210, 350], [300, 400], [12, 7]]
    assert labels.tolist() == [1, 0, 1]
    assert parse_box(" 1, 2 ,30.5 , 40 ").tolist() == [1, 2, 30.5, 40]


def test_a_point_that_is_not_numbers_says_the_form():
    for text in ("a,b", "1,2,x", "1,,2", "1,2,1.0"):
        with pytest.raises(ValueError) as info:
            parse_points(text)
        assert str(info.value) == (
            f"point {text!r} must be X,Y or X,Y,LABEL: numbers, and a label of 1 or 0"
        )


def test_a_box_is_two_corners_in_order():
    assert parse_box("1,2,30.5,40").tolist() == [1, 2, 30.5, 40]
    for bad in ("1,2,3", "5,2,5,9", "1,9,5,9", "1,2,nan,4", "1,2,inf,4", "1 2 3 4", "a,2,3,4"):
        with pytest.raises(ValueError, match=r"must be X0,Y0,X1,Y1 with X1 > X0 and Y1 > Y0"):
            parse_box(bad)


def test_a_mask_png_is_its_non_zero_pixels(tmp_path):
    img = np.zeros((6, 8), dtype=np.uint8)
    img[2:4, 1:5] = 1  # any non-zero value is the object
    img[5, 7] = 255
    cv2.imwrite(str(tmp_path / "m.png"), img)
    assert np.array_equal(read_mask_png(tmp_path / "m.png"), img > 0)
    with pytest.raises(UserError, match=r"cannot read mask image: .*nothing.png"):
        read_mask_png(tmp_path / "nothing.png")


def test_a_mask_png_without_background_is_an_error(tmp_path):
    """Every pixel non-zero (a dark object on white read the other way round, a frame
    saved as the mask): the object would be the whole frame."""
    img = np.full((6, 8, 3), 255, dtype=np.uint8)
    img[2:4, 1:5] = 30  # a dark grey object on white: still non-zero
    cv2.imwrite(str(tmp_path / "white.png"), img)
    with pytest.raises(UserError) as info:
        read_mask_png(tmp_path / "white.png")
    assert str(info.value) == (
        f"mask image has no background (every pixel is non-zero): {tmp_path / 'white.png'}: "
        "give the object non-zero on a black (0) or transparent background; "
        "a dark object on white is read inverted: invert the image"
    )
    listed_in_troubleshooting(str(info.value))


@pytest.mark.parametrize("share, warned", [(0.25, False), (0.5, False), (0.75, True)])
def test_a_mask_over_half_the_frame_is_warned_of(tmp_path, caplog, share, warned):
    """A black object on white is read inverted (its background is the object): it is still
    a mask, so a warning, from half the frame up."""
    img = np.zeros((4, 8), dtype=np.uint8)
    img[:, : int(8 * share)] = 255
    cv2.imwrite(str(tmp_path / "m.png"), img)
    with caplog.at_level(logging.WARNING, logger="sam2flow.prompts"):
        assert read_mask_png(tmp_path / "m.png").mean() == share
    lines = [r.getMessage() for r in caplog.records]
    if warned:
        assert lines == [
            f"{tmp_path / 'm.png'}: the mask covers 75 % of the frame; the object is its "
            "non-zero pixels, so a dark object on a white background is read inverted "
            "(invert the image)"
        ]
        listed_in_troubleshooting(lines[0])
    else:
        assert lines == []


def test_a_mask_png_is_read_as_the_tool_that_saved_it_meant(tmp_path):
    """A 16-bit label image (its object 1), an object drawn in colour on a transparent
    white background, a grey mask with an opaque alpha channel, a colour mask, a palette
    PNG (SAM 2's own annotation format): each is the same object."""
    from PIL import Image

    obj = np.zeros((6, 8), dtype=bool)
    obj[2:4, 1:5] = True
    label = obj.astype(np.uint16)
    drawn = np.full((6, 8, 4), 255, np.uint8)
    drawn[..., 3] = np.where(obj, 255, 0)
    drawn[obj, :3] = (0, 0, 200)
    grey = np.dstack([np.where(obj, 255, 0), np.full((6, 8), 255)]).astype(np.uint8)
    colour = np.zeros((6, 8, 3), np.uint8)
    colour[obj] = (0, 40, 0)
    opaque = np.dstack([colour, np.full((6, 8), 255, np.uint8)])
    for name, img in {"label": label, "drawn": drawn, "colour": colour, "opaque": opaque}.items():
        cv2.imwrite(str(tmp_path / f"{name}.png"), img)
    Image.fromarray(grey, "LA").save(tmp_path / "grey.png")
    palette = Image.fromarray(obj.astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    for name in ("label", "drawn", "grey", "colour", "opaque", "palette"):
        assert np.array_equal(read_mask_png(tmp_path / f"{name}.png"), obj), name


def test_a_manual_prompt_is_object_1_on_its_frame_from_the_config(tmp_path):
    img = np.zeros((4, 4), dtype=np.uint8)
    img[1:3, :2] = 255
    cv2.imwrite(str(tmp_path / "m.png"), img)
    prompt = manual_prompt(7, points="1,2", box="0,0,3,3", mask=tmp_path / "m.png")
    assert (prompt.frame, list(prompt.objects), prompt.source) == (7, [1], "config")
    obj = prompt.objects[1]
    assert obj.points.tolist() == [[1, 2]] and obj.labels.tolist() == [1]
    assert obj.box.tolist() == [0, 0, 3, 3] and np.array_equal(obj.mask, img > 0)
    only_box = manual_prompt(0, box="0,0,3,3").objects[1]
    assert only_box.points is None and only_box.mask is None
    with pytest.raises(ValueError, match="needs points, a box or a mask"):
        manual_prompt(0)


def test_each_prompt_error_is_one_line_with_the_file_and_the_fix(tmp_path):
    """The whole message, as the user reads it: what, which file, what to do."""
    off = BatchPrompt(frame=3, objects={1: points((-1, 2))}, source="p.csv")
    assert error(off) == (
        "object 1: point (-1, 2) on frame 3 is outside the 640x480 frame: p.csv: "
        "give video pixel coordinates (DeepLabCut: check prompts.scale and offset)"
    )
    mask = BatchPrompt(frame=0, objects={1: ObjectPrompt(mask=np.zeros((2, 3)))}, source="m.png")
    assert error(mask) == (
        "mask is 3x2, the frames 640x480: m.png: give a mask PNG the size of the video's frames"
    )
    late = BatchPrompt(frame=100, objects={1: points((1, 2))}, source="p.csv")
    assert error(late) == (
        "prompt frame 100 is outside the video (frames 0-99): p.csv: "
        "fix prompt_frame (--prompt-frame)"
    )
    with pytest.raises(UserError) as info:
        read_mask_png(tmp_path / "none.png")
    assert str(info.value) == (
        f"cannot read mask image: {tmp_path / 'none.png'}: give a PNG with the object non-zero"
    )
    with pytest.raises(ValueError) as info:
        manual_prompt(0)
    assert str(info.value) == "a manual prompt needs points, a box or a mask"


def test_a_point_off_the_frame_is_found_beside_a_box_on_it():
    obj = points((5, 5), (5, 900))
    obj.box = np.asarray([0, 0, 10, 10], dtype=np.float32)
    assert "point (5, 900)" in error(BatchPrompt(frame=0, objects={1: obj}))


def test_a_leading_separator_does_not_end_the_points():
    assert parse_points(";1,2;3,4")[0].tolist() == [[1, 2], [3, 4]]
    assert parse_box("1,2,3,4").dtype == np.float32


def test_last_masks_of_a_frame_whose_pixels_are_not_a_multiple_of_8(tmp_path):
    mask = np.zeros((2, 3, 5), dtype=bool)  # 15 pixels: the last byte is padded
    mask[0, 1, 2] = mask[1, 2, 4] = True
    np.savez_compressed(
        tmp_path / "masks.npz",
        frames=np.array([8, 9]),
        object_ids=np.array([1, 2]),
        masks=np.packbits(mask.reshape(2, -1), axis=-1)[None].repeat(2, axis=0),
        shape=np.array([2, 2, 3, 5]),
        status=np.array([["ok", "ok"], ["ok", "empty"]]),
    )
    frame, objects, masks, status = last_masks(tmp_path / "masks.npz")
    assert (frame, objects, status) == (9, [1, 2], ["ok", "empty"])
    assert np.array_equal(masks, mask)


def test_carry_errors_name_the_masks_and_the_fix(tmp_path):
    path = save_batch(tmp_path)
    with pytest.raises(UserError) as info:
        carried_prompt(path, 20, "x.jpg")
    assert str(info.value) == (
        f"previous batch ends on frame 12, not 19: {path}: "
        "rerun the previous batch (carry: chained needs batches in order)"
    )
    with pytest.raises(UserError) as info:
        carried_prompt(path, 13, None)
    assert str(info.value) == (
        f"the JPEG of frame 12 (where the carried masks belong) is needed: {path}: "
        "give --carry-image, or segment a folder made by 'sam2flow extract'"
    )


def carried(height=H, width=W) -> BatchPrompt:
    return BatchPrompt(frame=12, objects={1: ObjectPrompt(mask=np.zeros((height, width), bool))})


def test_carried_masks_of_another_frame_size_name_both_sizes_and_the_fix(tmp_path):
    path = save_batch(tmp_path)
    check_carried(carried(), H, W, path, None)
    with pytest.raises(UserError) as info:
        check_carried(carried(), H, W + 1, path, None)
    assert str(info.value) == (
        f"carried masks are {W}x{H} but this batch's frames are {W + 1}x{H}: {path}: "
        "carry from the previous batch of the same video"
    )
    with pytest.raises(UserError, match=rf"^carried masks are {W}x{H + 2} but"):
        check_carried(carried(height=H + 2), H, W, path, None)


def test_carried_masks_whose_record_names_another_videos_content_are_refused(tmp_path):
    path = save_batch(tmp_path)
    record = path.parent / "memory.json"
    record.write_text('{"video_identity": "10:abc"}')
    check_carried(carried(), H, W, path, "10:abc")
    check_carried(carried(), H, W, path, None)  # this batch's video unknown: nothing to compare
    with pytest.raises(UserError) as info:
        check_carried(carried(), H, W, path, "10:def")
    assert str(info.value) == (
        f"carried masks come from another video (its record names other content): {path}: "
        "carry from the previous batch of the same video"
    )
    for unknown in ("{}", '{"video_identity": null}', "[1]", "not json"):
        record.write_text(unknown)  # an older record, or none readable: nothing to compare
        check_carried(carried(), H, W, path, "10:def")
    record.unlink()
    check_carried(carried(), H, W, path, "10:def")


def test_a_mask_png_whose_colour_is_the_object_is_read_from_every_colour_channel(tmp_path):
    """Half the object red, half green (BGR order on disk): a third channel that varies is
    a colour, not transparency."""
    obj = np.zeros((6, 8), dtype=bool)
    obj[2:4, 1:5] = True
    img = np.zeros((6, 8, 3), np.uint8)
    img[2:4, 1:3] = (0, 0, 255)
    img[2:4, 3:5] = (0, 255, 0)
    cv2.imwrite(str(tmp_path / "c.png"), img)
    assert np.array_equal(read_mask_png(tmp_path / "c.png"), obj)


def test_an_opaque_black_object_on_a_transparent_coloured_background_is_the_object(tmp_path):
    obj = np.zeros((6, 8), dtype=bool)
    obj[2:4, 1:5] = True
    img = np.zeros((6, 8, 4), np.uint8)
    img[~obj] = (255, 0, 0, 0)  # transparent blue
    img[obj] = (0, 0, 0, 255)  # opaque black
    cv2.imwrite(str(tmp_path / "b.png"), img)
    assert np.array_equal(read_mask_png(tmp_path / "b.png"), obj)


def test_an_empty_mask_png_names_the_file_and_the_fix(tmp_path):
    cv2.imwrite(str(tmp_path / "e.png"), np.zeros((6, 8), np.uint8))
    with pytest.raises(UserError) as info:
        read_mask_png(tmp_path / "e.png")
    assert str(info.value) == (
        f"mask image is empty: {tmp_path / 'e.png'}: give a PNG with the object non-zero"
    )
