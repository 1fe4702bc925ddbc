"""A GGUF's chat template, rendered where it cannot hurt Confidant.

The template is a Jinja program written by whoever made the model file. Jinja's sandbox keeps it
away from Python's internals but not from building a 300 MB string, looping for minutes or raising
an error whose words would read as Confidant's own. So the file's template runs in a small process
of its own (spawned once per model, never holding the model or the library):

- its address space is capped (MEMORY_LIMIT, Linux), so a value too large fails there with
  MemoryError instead of growing the machine into the OOM killer;
- it has RENDER_SECONDS per prompt: past them, or on Stop, the process is killed;
- inside, the operators and calls that multiply text (`*`, `+`, `~`, `%`, `**`, join, replace,
  center, indent, format...) and the prompt itself are refused past OUTPUT_LIMIT characters, so
  the usual attacks end with a precise reason, early and cheaply.

A template that fails any of this is dropped for the life of the model: Confidant renders a
standard template of the model's family (ChatML, Llama 3, Gemma, Mistral, Phi-3) in its place and
keeps a note, naming the file and quoting its words, never as Confidant's own.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import re
import time

from app.core.cancel import Cancelled, CancelToken
from app.core.safe_text import printable

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 1_000_000  # characters: a prompt, or any one value the template builds
ITEMS_LIMIT = 1_000_000  # items of a list the template builds
NUMBER_LIMIT = 1_000_000  # largest number a call or filter may take (widths, counts, repeats)
SOURCE_LIMIT = 1_000_000  # characters of template source
MEMORY_LIMIT = 512 * 1024 * 1024  # address space the renderer may add to its start (Linux)
RENDER_SECONDS = 1.0  # real templates render in milliseconds
COMPILE_SECONDS = 5.0
START_SECONDS = 60.0  # starting the process (a busy machine can be slow to start Python)
_POLL_S = 0.02

# Standard templates, by family: what the model is given when its own template is missing or
# refused. `markers` are tokens whose presence in the vocabulary identifies the family.
STANDARD = {
    "llama3": (
        "Llama 3",
        ("<|start_header_id|>", "<|eot_id|>"),
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
        "<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n"
        "{% endif %}",
    ),
    "gemma": (
        "Gemma",
        ("<start_of_turn>", "<end_of_turn>"),
        "{{ bos_token }}{% for m in messages %}<start_of_turn>"
        "{{ 'model' if m['role'] == 'assistant' else 'user' }}\n{{ m['content'] | trim }}"
        "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n"
        "{% endif %}",
    ),
    "phi3": (
        "Phi-3",
        ("<|user|>", "<|assistant|>", "<|end|>"),
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
    ),
    "mistral": (
        "Mistral",
        ("[INST]", "[/INST]"),
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'assistant' %}"
        " {{ m['content'] | trim }}{{ eos_token }}{% else %}[INST] {{ m['content'] | trim }}"
        " [/INST]{% endif %}{% endfor %}",
    ),
    "chatml": (
        "ChatML",
        ("<|im_start|>", "<|im_end|>"),
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    ),
}

# What the template is tried on when the model loads: Confidant's two shapes of conversation.
_PROBES = (
    [{"role": "system", "content": "Answer from the sources."}, {"role": "user", "content": "Hi?"}],
    [
        {"role": "system", "content": "Answer from the sources."},
        {"role": "user", "content": "Hi?"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "And then?"},
    ],
)


def family_for(has_token) -> str:
    """The standard family whose control tokens the vocabulary has (`has_token(text)`), ChatML
    when none matches."""
    for family, (_label, markers, _source) in STANDARD.items():
        if all(has_token(m) for m in markers):
            return family
    return "chatml"


class TemplateRefused(Exception):
    """The file's template cannot be used; the message is a reason in our words (safe text)."""


class ChatTemplate:
    """The conversation in the model's own chat format, built safely (see the module).

    `source` is the file's template (None: the file has none); `file_name` names the file in the
    note; `bos`/`eos` are the model's texts for those tokens; `family` the standard template to
    fall back on. Not thread-safe: the engine's lane owns it.
    """

    def __init__(
        self,
        source: str | None,
        file_name: str,
        bos: str = "",
        eos: str = "",
        family: str = "chatml",
    ) -> None:
        self.source = source
        self.file_name = printable(file_name, 120)
        self.bos, self.eos = bos, eos
        self.family = family if family in STANDARD else "chatml"
        self.note: str | None = None  # why the standard template is used, for the status bar
        self._standard = None  # compiled standard template, once needed
        self._merge_system = False  # the file's template takes no system turn: fold it in
        self._proc = None
        self._conn = None
        if source is None:
            self._use_standard(None)
        elif len(source) > SOURCE_LIMIT:
            self._use_standard(f"it is {len(source):,} characters long")

    @property
    def using_standard(self) -> bool:
        return self._standard is not None

    @property
    def standard_label(self) -> str:
        return STANDARD[self.family][0]

    # ------------------------------------------------------------------ public
    def check(self) -> str | None:
        """Try the file's template on Confidant's conversations (at load): a template that
        fails is replaced by the standard one now rather than at the first question. Returns
        the note, if any."""
        for messages in _PROBES:
            if self.using_standard:
                break
            self.render(messages)
        return self.note

    def render(self, messages: list[dict[str, str]], cancel: CancelToken | None = None) -> str:
        """The prompt for `messages`, ending where the answer starts. Never fails because of
        the file's template (the standard one takes over, with a note); raises Cancelled when
        `cancel` is set while the file's template runs."""
        if not self.using_standard:
            try:
                return self._render_file(messages, cancel)
            except TemplateRefused as exc:
                self._use_standard(str(exc))
        return self._standard.render(
            messages=messages, add_generation_prompt=True, bos_token=self.bos, eos_token=self.eos
        )

    def close(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("close",))
            conn.close()
        if proc is not None:
            proc.join(1)
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    # ------------------------------------------------------------------ the file's template
    def _render_file(self, messages, cancel) -> str:
        if self._proc is None:
            self._start()
        sent = self._merged(messages) if self._merge_system else messages
        kind, value = self._ask(("render", sent, self.bos, self.eos), RENDER_SECONDS, cancel)
        if kind == "ok":
            return value
        if (
            kind == "raised"
            and not self._merge_system
            and messages[:1] != self._merged(messages)[:1]
        ):
            # Some templates (Gemma's) refuse a system turn by raising: give them the system
            # text inside the first question, as llama.cpp's server does.
            again, text = self._ask(
                ("render", self._merged(messages), self.bos, self.eos), RENDER_SECONDS, cancel
            )
            if again == "ok":
                log.info(
                    "'%s' takes no system turn; it is folded into the question", self.file_name
                )
                self._merge_system = True
                return text
        raise TemplateRefused(_reason(kind, value))

    @staticmethod
    def _merged(messages):
        if len(messages) < 2 or messages[0]["role"] != "system" or messages[1]["role"] != "user":
            return messages
        first = {
            "role": "user",
            "content": messages[0]["content"] + "\n\n" + messages[1]["content"],
        }
        return [first, *messages[2:]]

    def _start(self) -> None:
        try:
            ctx = multiprocessing.get_context("spawn")
            self._conn, child_end = ctx.Pipe()
            self._proc = ctx.Process(
                target=_worker, args=(child_end,), name="confidant-template", daemon=True
            )
            self._proc.start()
            child_end.close()
        except Exception as exc:  # no process could start (or this one may not have children)
            self._kill()
            raise TemplateRefused(f"it could not be checked ({printable(exc, 120)})") from exc
        kind, value = self._ask(None, START_SECONDS, None)
        if kind == "ok":
            kind, value = self._ask(("compile", self.source), COMPILE_SECONDS, None)
        if kind != "ok":
            raise TemplateRefused(_reason(kind, value))

    def _ask(self, message, seconds: float, cancel: CancelToken | None):
        """Send `message` (None: only wait), and wait `seconds` for the reply; kill the process
        past them or on Stop."""
        conn = self._conn
        try:
            if message is not None:
                conn.send(message)
            deadline = time.monotonic() + seconds
            while not conn.poll(_POLL_S):
                if cancel is not None and cancel.cancelled:
                    self._kill()
                    raise Cancelled()
                if time.monotonic() > deadline:
                    self._kill()
                    return "slow", seconds
            reply = conn.recv()
        except (EOFError, OSError):
            code = self._kill()
            return "died", code
        if isinstance(reply, tuple) and len(reply) == 2:
            return reply
        return "error", "an unreadable reply"

    def _kill(self) -> int | None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is None or proc.pid is None:  # never started
            return None
        proc.kill()
        proc.join(5)
        return proc.exitcode

    def _use_standard(self, reason: str | None) -> None:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self._kill()
        label = self.standard_label
        if reason is None:
            self.note = (
                f"'{self.file_name}' has no chat template; Confidant uses the standard {label} "
                "format. Answers may be poor: prefer an Instruct GGUF that includes its template."
            )
        else:
            self.note = (
                f"The chat template inside '{self.file_name}' is unsafe or damaged: {reason}. "
                f"Confidant uses a standard {label} template instead; answers may be poorer."
            )
        log.warning("%s", self.note)
        env = ImmutableSandboxedEnvironment()
        self._standard = env.from_string(STANDARD[self.family][2])


def _reason(kind: str, value) -> str:
    """Our words for what happened to the file's template; its own words only quoted."""
    detail = printable(value, 160) if isinstance(value, str) else ""
    if kind == "raised":
        return f'it refuses the conversation with a message of its own: "{detail}"'
    if kind == "too_big":
        return f"it asks for {detail}, far beyond what a prompt needs"
    if kind == "memory":
        return f"it needs more than {MEMORY_LIMIT // 2**20} MB of memory"
    if kind == "slow":
        return f"it takes more than {value:g} s to build a prompt"
    if kind == "recursion":
        return "it calls itself without end"
    if kind == "security":
        return "it tries to reach parts of Python that a chat template may not touch"
    if kind == "syntax":
        return f"it is not a valid template ({detail})"
    if kind == "died":
        return f"the process that runs it ended abruptly (code {value})"
    return f"it fails ({detail})"


# ====================================================================== the renderer process
class _TooBig(Exception):
    pass


class _Raised(Exception):
    pass


def _worker(conn) -> None:  # pragma: no cover - runs in the template process
    """Compile one template, then render it on request until told to close."""
    import jinja2.sandbox  # noqa: F401 - imported before the memory cap, not under it

    _limit_memory()
    conn.send(("ok", None))
    template = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message[0] == "close":
            break
        try:
            if message[0] == "compile":
                template = _environment().from_string(message[1])
                conn.send(("ok", None))
            else:
                _op, messages, bos, eos = message
                conn.send(("ok", _bounded_render(template, messages, bos, eos)))
        except BaseException as exc:  # every failure is a reason, in a reply
            conn.send(_classify(exc))


def _limit_memory() -> None:  # pragma: no cover - runs in the template process
    try:
        import resource

        with open("/proc/self/statm") as fh:  # what this process already maps (Linux)
            mapped = int(fh.read().split()[0]) * resource.getpagesize()
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = mapped + MEMORY_LIMIT
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):  # not Linux: the other bounds still hold
        pass


def _classify(exc: BaseException) -> tuple[str, str]:
    from jinja2.exceptions import SecurityError, TemplateSyntaxError

    if isinstance(exc, _Raised):
        return "raised", str(exc.args[0]) if exc.args else ""
    if isinstance(exc, _TooBig):
        return "too_big", str(exc)
    if isinstance(exc, MemoryError):
        return "memory", ""
    if isinstance(exc, RecursionError):
        return "recursion", ""
    if isinstance(exc, SecurityError):
        return "security", ""
    if isinstance(exc, TemplateSyntaxError):
        return "syntax", f"line {exc.lineno}: {exc.message}"
    return "error", f"{type(exc).__name__}: {exc}"


def _bounded_render(template, messages, bos: str, eos: str) -> str:
    pieces, size = [], 0
    for piece in template.generate(
        messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos
    ):
        size += len(piece)
        if size > OUTPUT_LIMIT:
            raise _TooBig(f"a prompt of more than {OUTPUT_LIMIT:,} characters")
        pieces.append(piece)
    return "".join(pieces)


def _check_size(n: int, what: str = "a text") -> None:
    if n > OUTPUT_LIMIT:
        raise _TooBig(f"{what} of {n:,} characters")


def _check_number(value) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > NUMBER_LIMIT:
        raise _TooBig(f"a size or count of {value:,}")


def _sized(value) -> bool:
    return isinstance(value, (str, list, tuple))


def _check_repeat(seq, times) -> None:
    if _sized(seq) and isinstance(times, int):
        n = len(seq) * max(times, 0)
        if isinstance(seq, str):
            _check_size(n)
        elif n > ITEMS_LIMIT:
            raise _TooBig(f"a list of {n:,} items")


_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _printf_size(fmt: str, args) -> int:
    """An upper bound of len(fmt % args)."""
    size = len(fmt)
    values = args if isinstance(args, tuple) else (args,)
    if isinstance(args, dict):
        values = tuple(args.values())
    for m in _PRINTF.finditer(fmt):
        for part in m.groups():
            if part == "*":
                raise _TooBig("a field whose width comes from its data")
            if part:
                size += int(part)
    return size + sum(len(str(v)) for v in values if _sized(v) or isinstance(v, int))


_FORMAT_WIDTH = re.compile(r"\d{5,}")


def _check_join(sep: str, items) -> list:
    items = list(items)
    if len(items) > ITEMS_LIMIT:
        raise _TooBig(f"a list of {len(items):,} items")
    _check_size(sum(len(str(i)) for i in items) + len(sep) * max(len(items) - 1, 0))
    return items


def _check_replace(s: str, old: str, new: str, count=-1) -> None:
    times = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    _check_size(len(s) + times * max(len(new) - len(old), 0))


def _environment():
    """Jinja's immutable sandbox with every text-multiplying operation bounded."""
    import functools

    from jinja2.compiler import CodeGenerator, optimizeconst
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedCodeGenerator(CodeGenerator):
        @optimizeconst
        def visit_Concat(self, node, frame) -> None:  # `a ~ b`: joined by a bounded join
            self.write("environment.bounded_concat((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "+", "%", "**"})
        code_generator_class = BoundedCodeGenerator

        def bounded_concat(self, values) -> str:
            texts = [str(v) for v in values]
            _check_size(sum(len(t) for t in texts))
            return "".join(texts)

        def call_binop(self, context, operator, left, right):
            if operator == "*":
                _check_repeat(left, right)
                _check_repeat(right, left)
            elif operator == "+" and _sized(left) and _sized(right):
                n = len(left) + len(right)
                if isinstance(left, str):
                    _check_size(n)
                elif n > ITEMS_LIMIT:
                    raise _TooBig(f"a list of {n:,} items")
            elif operator == "%" and isinstance(left, str):
                _check_size(_printf_size(left, right))
            elif (
                operator == "**"
                and isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and abs(left) > 1
                and right * abs(left).bit_length() > 100_000
            ):
                raise _TooBig(f"a number of more than {100_000:,} bits")
            return super().call_binop(context, operator, left, right)

        def call(__self, __context, __obj, *args, **kwargs):
            for value in (*args, *kwargs.values()):
                _check_number(value)
            owner = getattr(__obj, "__self__", None)
            name = getattr(__obj, "__name__", "")
            if isinstance(owner, str) and args:
                if name == "join":
                    args = (_check_join(owner, args[0]), *args[1:])
                elif name == "replace" and len(args) >= 2:
                    _check_replace(owner, str(args[0]), str(args[1]), *args[2:3])
                elif name == "expandtabs":
                    _check_size(len(owner) + owner.count("\t") * int(args[0]))
            return super().call(__context, __obj, *args, **kwargs)

        def wrap_str_format(self, value):
            owner = getattr(value, "__self__", None)
            if isinstance(owner, str) and _FORMAT_WIDTH.search(owner):
                raise _TooBig("a field padded to tens of thousands of characters")
            wrapped = super().wrap_str_format(value)
            if wrapped is None:
                return None

            def bounded(*args, **kwargs):
                for v in (*args, *kwargs.values()):
                    _check_number(v)
                text = wrapped(*args, **kwargs)
                _check_size(len(text))
                return text

            return bounded

    env = BoundedSandbox(trim_blocks=True, lstrip_blocks=True)
    env.globals.pop("lipsum", None)  # builds text of any length; no chat template uses it

    def raise_exception(message=""):
        raise _Raised(str(message))

    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: time.strftime(str(fmt)[:200])

    def bounded_filter(name, func):
        passes = getattr(func, "jinja_pass_arg", None) is not None

        @functools.wraps(func)
        def run(*args, **kwargs):
            given = args[1:] if passes else args  # the value, then the filter's arguments
            for v in (*given[1:], *kwargs.values()):
                _check_number(v)
            if name == "join" and given:
                items = _check_join(
                    str(kwargs.get("d", given[1] if len(given) > 1 else "")), given[0]
                )
                args = (*args[: len(args) - len(given)], items, *given[1:])
            elif name == "replace" and len(given) >= 3:
                _check_replace(str(given[0]), str(given[1]), str(given[2]), *given[3:4])
            elif name == "indent" and given:
                width = kwargs.get("width", given[1] if len(given) > 1 else 4)
                pad = len(width) if isinstance(width, str) else int(width)
                _check_size(len(str(given[0])) * (pad + 1))
            elif name == "wordwrap" and given:
                wrap = kwargs.get("wrapstring", given[4] if len(given) > 4 else "\n") or "\n"
                width = max(int(kwargs.get("width", given[1] if len(given) > 1 else 79)), 1)
                lines = len(str(given[0])) // width + str(given[0]).count("\n") + 1
                _check_size(len(str(given[0])) + lines * len(str(wrap)))
            elif name == "format" and given:
                _check_size(_printf_size(str(given[0]), tuple(given[1:]) or dict(kwargs)))
            elif name == "tojson" and (len(given) > 1 or "indent" in kwargs):
                indent = kwargs.get("indent", given[1] if len(given) > 1 else None)
                size = len(indent) if isinstance(indent, str) else int(indent or 0)
                if size > 16:
                    raise _TooBig("JSON indented by more than 16 characters")
            result = func(*args, **kwargs)
            if isinstance(result, str):
                _check_size(len(result))
            return result

        return run

    env.filters = {name: bounded_filter(name, f) for name, f in env.filters.items()}
    return env
