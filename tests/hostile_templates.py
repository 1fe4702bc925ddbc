"""Chat templates written to hurt whoever renders them, each with the reason Confidant must give.

Shared by the tests (tests/core/test_chat_template.py, tests/integration/test_hostile_templates.py)
and by a measurement of each case's time and peak memory, after and before the bounds:

    python -m tests.hostile_templates            # Confidant's ChatTemplate
    python -m tests.hostile_templates --before   # Jinja's sandbox alone, as before the bounds
                                                 # (capped at 4 GB and 60 s so the machine lives)
"""

from __future__ import annotations

import sys

ESC = "\x1b"
FAKE_ERROR = f"{ESC}[2J{ESC}[31mYour license expired, call +1 555 0100 to renew{ESC}[0m"

# name: (template, words the note must contain)
CASES = {
    "huge_repeat": ("{{ 'x' * 300000000 }}", "a text of 300,000,000 characters"),
    "nested_loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "takes more than 1 s",
    ),
    "fake_error": (
        "{{ raise_exception('" + FAKE_ERROR + "') }}",
        'a message of its own: "\\x1b[2J\\x1b[31mYour license expired',
    ),
    "doubling_concat": (
        "{% set ns = namespace(s='x' * 900000) %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "a text of 1,800,000 characters",
    ),
    "amplifying_join": (
        "{% set s = 'x' * 900000 %}{{ range(100000) | map('string') | join(s) }}",
        "a text of 89,999,",
    ),
    "wide_center": ("{{ 'x' | center(300000000) }}", "a size or count of 300,000,000"),
    "wide_format": ("{{ '{:>99999999}'.format(1) }}", "a field padded to tens of thousands"),
    "wide_printf": ("{{ '%99999999s' % 'x' }}", "a text of 100,000,0"),
    "endless_output": (
        "{% set s = 'x' * 900000 %}{% for i in range(100000) %}{{ s }}{% endfor %}",
        "a prompt of more than 1,000,000 characters",
    ),
    "big_power": ("{{ 10 ** 100000000 }}", "a number of more than 100,000 bits"),
    "python_internals": (
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "parts of Python that a chat template may not touch",
    ),
    "not_jinja": ("{% for %}", "it is not a valid template (line 1"),
    "endless_macro": (
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "it calls itself without end",
    ),
    # Past every check on purpose: a million-character field 100,000 times. The process's
    # address-space cap stops it (Linux).
    "memory_wall": (
        "{{ range(100000) | map('string') | map('center', 999999) | list | length }}",
        "it needs more than 512 MB of memory",
    ),
}

CONVERSATION = [
    {"role": "system", "content": "Answer from the sources."},
    {"role": "user", "content": "What is our leave policy?"},
]


def _after(name: str) -> str:
    from app.core.chat_template import ChatTemplate

    template = ChatTemplate(CASES[name][0], f"{name}.gguf", "<s>", "</s>")
    template.check()
    template.render(CONVERSATION)
    template.close()
    return template.note or "(no note)"


def _before(name: str) -> str:
    """Jinja's immutable sandbox alone, as Confidant rendered templates before the bounds."""
    import resource

    from jinja2.sandbox import ImmutableSandboxedEnvironment

    cap = 4 << 30
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise RuntimeError(message)

    env.globals["raise_exception"] = raise_exception
    try:
        text = env.from_string(CASES[name][0]).render(
            messages=CONVERSATION, add_generation_prompt=True, bos_token="<s>", eos_token="</s>"
        )
        return f"rendered {len(text):,} characters"
    except MemoryError:
        return "MemoryError at the 4 GB cap"
    except BaseException as exc:
        return f"{type(exc).__name__}: {str(exc)[:80]!r}"


def _one(name: str, before: bool) -> None:
    import resource
    import time

    started = time.perf_counter()
    outcome = _before(name) if before else _after(name)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    print(
        f"{name:17} {time.perf_counter() - started:6.2f} s  peak RSS {own:5d} MB, renderer "
        f"{children:4d} MB  {outcome[:150]!r}",
        flush=True,
    )


def main(argv: list[str]) -> None:
    """Each case in a process of its own, so that each peak is its own."""
    import subprocess

    before = "--before" in argv
    names = [a for a in argv if not a.startswith("--")] or list(CASES)
    for name in names:
        args = [
            sys.executable,
            "-c",
            f"from tests.hostile_templates import _one; _one({name!r}, {before})",
        ]
        try:
            subprocess.run(args, timeout=60 if before else 120, check=False)
        except subprocess.TimeoutExpired:
            print(f"{name:17} still running at 60 s (killed)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
