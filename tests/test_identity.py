"""A file's identity: the same content is the same file wherever it lies and whatever its
modification time; another content or length is another file."""

import os
import shutil

from sam2flow.identity import BLOCK_BYTES, BLOCKS, file_identity


def test_a_copy_anywhere_with_any_clock_is_the_same_file(tmp_path):
    first = tmp_path / "a.csv"
    first.write_bytes(b"scorer,s\n" * 1000)
    (tmp_path / "b").mkdir()
    copy = shutil.copy(first, tmp_path / "b" / "c.csv")
    os.utime(copy, (1, 1))
    assert file_identity(copy) == file_identity(first)
    assert file_identity(first).startswith(f"{first.stat().st_size}:")


def test_a_small_file_is_read_whole(tmp_path):
    """Up to BLOCKS x BLOCK_BYTES, every byte counts (a label file with one point moved)."""
    path = tmp_path / "labels.csv"
    data = bytearray(os.urandom(BLOCKS * BLOCK_BYTES))
    path.write_bytes(data)
    before = file_identity(path)
    data[len(data) // 2 + 7] ^= 1
    path.write_bytes(data)
    assert file_identity(path) != before


def test_a_large_file_is_sampled_from_its_first_to_its_last_byte(tmp_path):
    path = tmp_path / "video.mp4"
    size = 10 * BLOCKS * BLOCK_BYTES + 5
    data = bytearray(os.urandom(size))
    path.write_bytes(data)
    before = file_identity(path)
    step = (size - BLOCK_BYTES) // (BLOCKS - 1)
    for k in range(BLOCKS):  # each sampled block, its first and its last byte
        for at in (k * step, k * step + BLOCK_BYTES - 1):
            data[at] ^= 1
            path.write_bytes(data)
            assert file_identity(path) != before, (k, at)
            data[at] ^= 1
    data[BLOCK_BYTES] ^= 1  # between two samples: the size and the clock tell
    path.write_bytes(data)
    assert file_identity(path) == before
    path.write_bytes(data + b"\0")
    assert file_identity(path) != before


def test_no_file_has_no_identity(tmp_path):
    assert file_identity(tmp_path / "none.png") is None
    (tmp_path / "unreadable").mkdir()
    assert file_identity(tmp_path / "unreadable") is None


def test_another_file_moved_in_with_the_same_size_and_clock_is_another_file(tmp_path):
    """``cp -p`` to a scratch name, then ``mv`` over the original: only the inode tells
    the file that is there now from the one already read in this process."""
    path, other = tmp_path / "labels.csv", tmp_path / "new.csv"
    path.write_bytes(b"1,40,60\n")
    before = file_identity(path)
    other.write_bytes(b"1,90,60\n")
    stat = path.stat()
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(other, path)
    assert file_identity(path) != before
