"""Real model files with hostile chat templates: the embedded SmolLM2 rewritten with another
template, loaded as the app loads a model (its own process). Each ends with a note naming the
file, a standard template, and an answer."""

from __future__ import annotations

import threading
import time

import psutil
import pytest

from app.config import default_llm_path
from app.core.cancel import Cancelled, CancelToken
from app.core.chat_template import RENDER_SECONDS
from app.core.llm import Generated, LlamaEngine
from app.core.llm_process import EngineProcess
from tests.engine_helpers import chat, collect
from tests.gguf_files import with_metadata, with_template
from tests.hostile_templates import CASES, CONVERSATION, ESC, FAKE_ERROR

pytestmark = pytest.mark.slow

# Fine on the two conversations tried at load; on a question about part-time staff,
# a trap: slow, or the file's own "error" with terminal escapes.
SMOL = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SLOW_LATER = (
    "{% if 'part-time' in messages[-1]['content'] %}{% for i in range(100000) %}"
    "{% for j in range(100000) %}{% endfor %}{% endfor %}{% endif %}" + SMOL
)
RAISES_LATER = (
    "{% if 'part-time' in messages[-1]['content'] %}{{ raise_exception('"
    + FAKE_ERROR
    + "') }}{% endif %}"
    + SMOL
)
FOLLOW_UP = [
    *CONVERSATION,
    {"role": "assistant", "content": "Twenty days."},
    {"role": "user", "content": "And for part-time staff?"},
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    src = default_llm_path()
    return {
        "huge": with_template(src, root / "huge\x1b[31m.gguf", CASES["huge_repeat"][0]),
        "slow_later": with_template(src, root / "slow-later.gguf", SLOW_LATER),
        "raises_later": with_template(src, root / "raises-later.gguf", RAISES_LATER),
        "none": with_metadata(src, root / "plain.gguf", {"tokenizer.chat_template": b""}),
    }


def test_a_template_that_would_build_300_mb_loads_with_the_standard_one_and_answers(files):
    engine = EngineProcess(files["huge"], n_ctx=1024, gpu_layers=0)
    rss_before = psutil.Process().memory_info().rss
    try:
        report = engine.load()
        assert report.warning.startswith(
            "The chat template inside 'huge\\x1b[31m.gguf' is unsafe or damaged: it asks for a "
            "text of 300,000,000 characters"
        )
        assert "standard ChatML template" in report.warning and ESC not in report.warning
        prompt = engine.render(CONVERSATION)
        assert prompt.startswith("<|im_start|>system\nAnswer from the sources.<|im_end|>")
        text, stats = collect(engine.generate(prompt, CancelToken(), 8, 0))
        assert text and isinstance(stats, Generated)
        # Nothing of the 300 MB was ever built, here or in the model's process.
        assert psutil.Process().memory_info().rss - rss_before < 200 * 2**20
        assert psutil.Process(engine._proc.pid).memory_info().rss < 1024 * 2**20
    finally:
        engine.close()
    assert engine.template is None


def test_stop_reaches_a_slow_template_and_the_next_question_gets_the_standard_one(files):
    engine = EngineProcess(files["slow_later"], n_ctx=1024, gpu_layers=0)
    try:
        assert engine.load().warning is None  # the trap is not on the conversations tried
        token = CancelToken()
        threading.Timer(0.2, token.cancel).start()
        started = time.monotonic()
        with pytest.raises(Cancelled):
            engine.render(FOLLOW_UP, token)
        assert time.monotonic() - started < RENDER_SECONDS
        started = time.monotonic()
        prompt = engine.render(FOLLOW_UP)  # no Stop: the deadline ends it
        assert time.monotonic() - started < 10 * RENDER_SECONDS
        assert "And for part-time staff?<|im_end|>\n<|im_start|>assistant\n" in prompt
        assert "it takes more than 1 s to build a prompt" in engine.report.warning
        assert "'slow-later.gguf'" in engine.report.warning
        text, _ = collect(engine.generate(prompt, CancelToken(), 8, 0))
        assert text
    finally:
        engine.close()


def test_the_files_error_is_quoted_as_its_own_on_the_question_that_triggers_it(files):
    engine = LlamaEngine(files["raises_later"], n_ctx=1024, gpu_layers=0)
    try:
        assert engine.load().warning is None
        assert chat(engine, "Hi?").endswith("<|im_start|>assistant\n")  # its own template
        prompt = engine.render(FOLLOW_UP)
        assert prompt.endswith("And for part-time staff?<|im_end|>\n<|im_start|>assistant\n")
        warning = engine.report.warning
        assert warning.startswith("The chat template inside 'raises-later.gguf' is unsafe")
        assert (
            'a message of its own: "\\x1b[2J\\x1b[31mYour license expired, call +1 555 0100 '
            'to renew\\x1b[0m"' in warning
        )
        assert ESC not in warning
    finally:
        engine.close()


def test_a_model_without_a_template_gets_its_familys_standard_one(files):
    engine = LlamaEngine(files["none"], n_ctx=1024, gpu_layers=0)
    try:
        report = engine.load()
        assert "'plain.gguf' has no chat template" in report.warning
        assert engine.template.family == "chatml"  # SmolLM2's vocabulary has <|im_start|>
        assert chat(engine, "Hi?").startswith("<|im_start|>system\nYou are helpful.<|im_end|>")
    finally:
        engine.close()
