"""Model files are checked before llama.cpp sees them (it may abort the process on bad ones)."""

import shutil

import pytest

from app.config import default_llm_path
from app.core.gguf_check import ModelFileError, inspect_gguf


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
