"""A GGUF's chat template is someone else's program: each hostile one ends with a reason that
names the file, a standard template in its place, bounded time and memory; real ones are
rendered exactly as Jinja renders them."""

from __future__ import annotations

import resource
import sys
import threading
import time

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.cancel import Cancelled, CancelToken
from app.core.chat_template import RENDER_SECONDS, ChatTemplate, family_for
from app.core.safe_text import printable
from tests.hostile_templates import CASES, CONVERSATION, ESC

CHATML = (
    "<|im_start|>system\nAnswer from the sources.<|im_end|>\n"
    "<|im_start|>user\nWhat is our leave policy?<|im_end|>\n<|im_start|>assistant\n"
)


@pytest.fixture
def make():
    made = []

    def _make(source, name="model.gguf", **kw):
        t = ChatTemplate(source, name, "<s>", "</s>", **kw)
        made.append(t)
        return t

    yield _make
    for t in made:
        t.close()


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_template_is_replaced_with_its_reason(make, case):
    if case == "memory_wall" and not sys.platform.startswith("linux"):
        pytest.skip("the renderer's address-space cap is Linux's")
    source, reason = CASES[case]
    template = make(source, f"{case}.gguf")
    started = time.monotonic()
    note = template.check()
    prompt = template.render(CONVERSATION)
    elapsed = time.monotonic() - started
    if case == "memory_wall" and note is not None and "takes more than" in note:
        # Both caps bound it: on a slow moment (page faults in a VM) the 1 s one is reached
        # before 512 MB are; the memory bound is checked below either way.
        reason = "takes more than"
    assert note is not None and reason in note, note
    assert note.startswith(f"The chat template inside '{case}.gguf' is unsafe or damaged: ")
    assert "standard ChatML template instead" in note
    assert ESC not in note
    assert prompt == CHATML  # the standard template, for the same conversation
    assert template.using_standard and template._proc is None  # its process is gone
    # Bounds, not speed: minutes and gigabytes before (python -m tests.hostile_templates).
    assert elapsed < 30
    renderer_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert case != "memory_wall" or renderer_mb < 1500


def test_the_files_own_words_are_quoted_as_its_own_and_cannot_drive_a_terminal(make):
    template = make(
        "{{ raise_exception('\x1b]0;pwned\x07Call \u202e0100 555\x1b[0m') }}", "a\x1bb.gguf"
    )
    note = template.check()
    assert note.startswith("The chat template inside 'a\\x1bb.gguf' is unsafe or damaged: ")
    assert 'a message of its own: "\\x1b]0;pwned\\x07Call \\u202e0100 555\\x1b[0m"' in note
    assert all(ch.isprintable() for ch in note)


def test_stop_ends_a_slow_template_at_once_and_does_not_condemn_it(make):
    template = make(CASES["nested_loops"][0])
    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        template.render(CONVERSATION, token)
    assert time.monotonic() - started < RENDER_SECONDS  # Stop, not the deadline, ended it
    assert template._proc is None and template.note is None and not template.using_standard
    # The next question, without Stop, meets the deadline, and the standard template.
    assert template.render(CONVERSATION) == CHATML
    assert "takes more than 1 s" in template.note


def test_a_real_template_renders_as_jinja_renders_it_and_keeps_its_process(make):
    from app.config import default_llm_path
    from app.core.gguf_check import inspect_gguf

    source = inspect_gguf(default_llm_path()).chat_template
    template = make(source)
    assert template.check() is None
    long = [
        {"role": "system", "content": "S " * 2000},
        *[{"role": r, "content": "word " * 3000} for r in ["user", "assistant"] * 5],
        {"role": "user", "content": "q"},
    ]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    expected = env.from_string(source).render(
        messages=long, add_generation_prompt=True, bos_token="<s>", eos_token="</s>"
    )
    pid = template._proc.pid
    assert template.render(long) == expected
    assert template._proc.pid == pid  # one process for the model's life, not one per prompt


def test_features_real_templates_use_pass_the_bounds(make):
    """Namespaces, `~` and `+` on text and lists, slices, filters, macros that recurse on
    nested data, strftime_now, a raise_exception on a branch not taken."""
    source = (
        "{%- set ns = namespace(sys='', kept=[]) -%}{%- set today = strftime_now('%Y') -%}"
        "{%- macro fmt(v) -%}{%- if v is mapping -%}{ {%- for k, x in v | dictsort -%}{{ k }}:"
        "{{ fmt(x) }}{%- endfor -%} }{%- else -%}{{ v | tojson }}{%- endif -%}{%- endmacro -%}"
        "{%- for m in messages -%}{%- if m.role == 'system' -%}"
        "{%- set ns.sys = ns.sys ~ m.content | trim -%}"
        "{%- else -%}{%- set ns.kept = ns.kept + [m] -%}"
        "{%- endif -%}{%- endfor -%}{%- if ns.kept | length == 0 -%}"
        "{{ raise_exception('no user turn') }}{%- endif -%}"
        "{{ bos_token }}[{{ today | length }}]{{ fmt({'a': {'b': 1}}) }}<<{{ ns.sys[:6] }}>>"
        "{%- for m in ns.kept -%}{{ '%s: %s' | format(m.role | upper, m.content) }}"
        "{{ '\\n' if not loop.last }}{%- endfor -%}{{ ' | '.join(['x', 'y']) * 2 }}"
    )
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["strftime_now"] = lambda fmt: time.strftime(fmt)
    env.globals["raise_exception"] = lambda message: 1 / 0
    expected = env.from_string(source).render(
        messages=CONVERSATION, add_generation_prompt=True, bos_token="<s>", eos_token="</s>"
    )
    assert "<<Answer>>USER: What is our leave policy?x | yx | y" in expected
    template = make(source)
    assert template.check() is None
    assert template.render(CONVERSATION) == expected


def test_a_template_that_takes_no_system_turn_gets_it_inside_the_question(make):
    gemma_like = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported')"
        " }}{% endif %}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}"
        "<end_of_turn>\n{% endfor %}<start_of_turn>model\n"
    )
    template = make(gemma_like)
    assert template.check() is None
    assert template.render(CONVERSATION) == (
        "<start_of_turn>user\nAnswer from the sources.\n\nWhat is our leave policy?"
        "<end_of_turn>\n<start_of_turn>model"  # Jinja drops the last newline
    )


def test_no_template_uses_the_standard_one_of_the_models_family(make):
    template = make(None, "llama.gguf", family="llama3")
    assert "'llama.gguf' has no chat template" in template.check()
    assert template.render(CONVERSATION) == (
        "<s><|start_header_id|>system<|end_header_id|>\n\nAnswer from the sources.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is our leave policy?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_the_family_comes_from_the_vocabulary():
    def vocab(*tokens):
        return lambda text: text in tokens

    assert family_for(vocab("<|start_header_id|>", "<|eot_id|>", "<|im_start|>")) == "llama3"
    assert family_for(vocab("<start_of_turn>", "<end_of_turn>")) == "gemma"
    assert family_for(vocab("[INST]", "[/INST]")) == "mistral"
    assert family_for(vocab("<|user|>", "<|assistant|>", "<|end|>")) == "phi3"
    assert family_for(vocab()) == "chatml"


def test_printable_escapes_what_could_act_and_bounds_length():
    assert printable("ok\x1b[31mred\x07\n\u202eevil\u200b") == (
        "ok\\x1b[31mred\\x07\\x0a\\u202eevil\\u200b"
    )
    assert printable("é 日本 🙂") == "é 日本 🙂"
    assert printable("x" * 50, 10) == "x" * 10 + "…"
