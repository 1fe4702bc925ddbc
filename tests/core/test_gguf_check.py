"""Model files are checked before llama.cpp sees them (it may abort the process on bad ones)."""

import os
import shutil
import struct

import pytest

from app.config import default_llm_path
from app.core.gguf_check import ModelFileError, inspect_gguf
from tests.gguf_files import _string, bare, kv_string, nested_arrays


def test_the_embedded_model_passes_and_reports_its_shape():
    info = inspect_gguf(default_llm_path())
    assert info.architecture == "llama"
    assert info.layers == 30
    assert info.chat_template and "im_start" in info.chat_template


@pytest.mark.parametrize("cut", [10, 5_000, 40_000_000])
def test_a_truncated_model_is_refused_with_a_reason(tmp_path, cut):
    src = default_llm_path()
    bad = tmp_path / "cut.gguf"
    with open(src, "rb") as fh:
        bad.write_bytes(fh.read(cut))
    with pytest.raises(ModelFileError, match=r"cut\.gguf"):
        inspect_gguf(bad)


def test_not_a_gguf(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_text("this is a text file, not a model " * 10)
    with pytest.raises(ModelFileError, match="not a GGUF model"):
        inspect_gguf(fake)


def test_missing_and_folder(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        inspect_gguf(tmp_path / "nope.gguf")
    with pytest.raises(ModelFileError, match="folder"):
        inspect_gguf(tmp_path)


def test_garbage_in_the_header_is_caught(tmp_path):
    bad = tmp_path / "garbled.gguf"
    shutil.copy(default_llm_path(), bad)
    with open(bad, "r+b") as fh:
        fh.seek(16)
        fh.write(b"\xff" * 16)  # absurd key/value count and first key length
    with pytest.raises(ModelFileError, match=r"garbled\.gguf"):
        inspect_gguf(bad)


def test_what_is_not_a_regular_file_is_named_for_what_it_is(tmp_path):
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match=r"is a pipe \(FIFO\), not a model file"):
        inspect_gguf(fifo)  # and returns at once: a FIFO is never opened for reading
    if os.path.exists("/dev/zero"):
        with pytest.raises(ModelFileError, match="'/dev/zero' is a device, not a model file"):
            inspect_gguf("/dev/zero")
    link = tmp_path / "zero.gguf"
    link.symlink_to("/dev/zero")
    with pytest.raises(ModelFileError, match="is a device"):
        inspect_gguf(link)
    with pytest.raises(ModelFileError, match="is a folder"):
        inspect_gguf(tmp_path)


def test_arrays_nested_without_end_are_called_damaged_or_unsafe(tmp_path):
    for depth, key in ((100_000, "general.tags"), (100_000, "tokenizer.ggml.junk")):
        bad = bare(tmp_path / "deep.gguf", [nested_arrays(key, depth)])
        with pytest.raises(
            ModelFileError, match=r"'deep\.gguf' is damaged or unsafe \(arrays nested"
        ):
            inspect_gguf(bad)
    ok = bare(tmp_path / "two.gguf", [nested_arrays("general.pairs", 2)])
    assert inspect_gguf(ok).metadata["general.pairs"] == [[7]]


def test_long_arrays_are_skipped_not_kept(tmp_path):
    count = 5_000_000
    big = _string("general.big") + struct.pack("<IIQ", 9, 0, count) + b"\1" * count
    info = inspect_gguf(bare(tmp_path / "big.gguf", [big, kv_string("general.name", "ok")]))
    assert info.metadata["general.big"] is None and info.name == "ok"


def test_names_from_the_file_cannot_drive_a_terminal(tmp_path):
    info = inspect_gguf(bare(tmp_path / "m.gguf", [kv_string("general.name", "A\x1b[2J\u202eB")]))
    assert info.name == "A\\x1b[2J\\u202eB"
    odd = tmp_path / "x\x1b[31m.gguf"
    odd.write_text("not a model")
    with pytest.raises(ModelFileError) as err:
        inspect_gguf(odd)
    assert "\x1b" not in str(err.value) and "x\\x1b[31m.gguf" in str(err.value)
