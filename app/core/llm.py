"""The GGUF engine: load with GPU offload and fallback, render the GGUF's chat template, stream.

The streaming loop talks to llama.cpp's C API through llama-cpp-python's ctypes layer directly:
the prompt is evaluated in n_batch slices (the cancel flag is checked between them), each token is
sampled by llama.cpp's own sampler chain (no per-token copy of the logits into numpy), and pieces
are decoded incrementally (a UTF-8 character split across tokens is held back, never mangled).

The chat template inside the GGUF is the file author's program: it runs bounded, in a process of
its own, with a standard template in its place when it misbehaves (app/core/chat_template.py).

Imports only llama_cpp and jinja2, so it runs on machines without chromadb or Qt. Not thread-safe:
one lane (one thread) owns an engine.
"""

from __future__ import annotations

import codecs
import ctypes
import dataclasses
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from app.core.cancel import Cancelled, CancelToken
from app.core.chat_template import ChatTemplate, family_for
from app.core.gguf_check import GGUFInfo, ModelFileError, inspect_gguf

log = logging.getLogger(__name__)


class ModelLoadError(ModelFileError):
    """llama.cpp could not load the model on any device."""


class PromptTooLong(Exception):
    pass


@dataclass(frozen=True)
class LoadReport:
    model: str
    path: str
    load_s: float
    gpu_layers: int  # layers placed on the GPU
    total_layers: int  # repeating layers + the output layer
    device: str  # "GPU" or "CPU"
    n_ctx: int
    attempts: tuple[str, ...]  # what was tried, for the log and the status bar
    warning: str | None = None  # e.g. no chat template in the file, or an unsafe one

    @property
    def where(self) -> str:
        if self.gpu_layers == 0:
            return "CPU"
        return f"GPU, {self.gpu_layers}/{self.total_layers} layers"


@dataclass(frozen=True)
class Prefill:
    """How far the prompt's evaluation has got (tokens done of total): yielded by generate()
    with progress=True, between slices, so a window can say it on a slow CPU."""

    done: int
    total: int


@dataclass(frozen=True)
class Generated:
    """Final figures of one generation (the last item a generate() call yields)."""

    prompt_tokens: int
    completion_tokens: int
    prefill_ms: float
    ttft_ms: float
    tokens_per_s: float
    stop_reason: str
    reused_tokens: int = 0


def _llama():
    import llama_cpp  # imported lazily: loading the shared library takes a moment

    return llama_cpp


def gpu_offload_supported() -> bool:
    try:
        return bool(_llama().llama_supports_gpu_offload())
    except Exception:  # no library at all: CPU is all we could do anyway
        return False


_LOG_CALLBACK = None


def _quiet_llama_logs() -> None:
    """Route llama.cpp's chatter to Python logging (warnings and errors only)."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    ll = _llama()
    levels = {3: logging.WARNING, 4: logging.ERROR}  # ggml: 1 debug, 2 info, 3 warn, 4 error

    @ll.llama_log_callback
    def _callback(level, text, _user):  # pragma: no cover - called from C
        if level in levels:
            log.log(levels[level], "llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

    _LOG_CALLBACK = _callback
    ll.llama_log_set(_callback, ctypes.c_void_p(0))


def layer_plan(
    requested: int, total_layers: int, gpu: bool, estimate: int | None = None
) -> list[int]:
    """The GPU layer counts to try in order: what was asked, then fewer, then the CPU.

    Auto (`requested` < 0) with `estimate`, the layers that fit in the GPU memory free now
    (model_catalog.estimate_fit), starts there when not all fit: the estimate is a little under
    what loads (docs/performance.md, "model fit estimate"), where halving from all the layers
    placed half of what fitted. A failure from there still halves, down to the CPU."""
    if not gpu or requested == 0:
        return [0]
    first = total_layers if requested < 0 else min(requested, total_layers)
    if requested < 0 and estimate is not None and 0 <= estimate < total_layers:
        first = estimate
    plan = [first]
    n = first
    while n > 1:
        n //= 2
        plan.append(n)
    plan.append(0)
    return list(dict.fromkeys(plan))


def fit_estimate(info, n_ctx: int) -> int | None:
    """The layers that fit in the GPU memory free now, or None when it cannot be told."""
    try:
        from app.core.model_catalog import detect_memory, estimate_fit

        memory = detect_memory()
        if not memory.gpu_usable:
            return None
        return estimate_fit(info, memory, n_ctx).gpu_layers
    except Exception:  # nvidia-smi missing or odd: the plan halves as before
        log.debug("no fit estimate", exc_info=True)
        return None


class LlamaEngine:
    """One loaded GGUF model with its context. Create, load(), then generate() repeatedly."""

    def __init__(
        self,
        path: str | Path,
        n_ctx: int = 4096,
        gpu_layers: int = -1,
        n_batch: int | None = None,
        flash_attn: bool = True,
        seed: int = 0,
        n_threads: int | None = None,
        backend_sampling: bool | None = None,
        overlap_decode: bool | None = None,
        check_template: bool = True,
    ) -> None:
        """`check_template=False`: load() leaves the chat template to the caller (the model's
        child process: its parent runs the template, see template_facts)."""
        self.path = Path(path).expanduser()
        self.n_ctx_requested = n_ctx
        self.n_ctx: int | None = None  # the context it got: known once loaded
        self.gpu_layers_requested = gpu_layers
        self.n_batch = n_batch  # None: 2048 on the GPU, 512 on the CPU (see _load_with)
        self.flash_attn = flash_attn
        self.seed = seed
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2))
        # Sample inside llama.cpp's graph (see _sampler): None = when layers are on the GPU.
        self.backend_sampling = backend_sampling
        # Queue each token's decode before handing the token on (see generate): None = when
        # every layer is on the GPU, where llama_decode returns before the work is done.
        self.overlap_decode = overlap_decode
        self._attached: tuple[float, object] | None = None  # (temperature, chain) on the context
        self.info: GGUFInfo | None = None
        self.report: LoadReport | None = None
        self._model = None
        self._ctx = None
        self._vocab = None
        self._cached: list[int] = []  # tokens whose KV entries are in the context
        self.check_template = check_template
        self.template: ChatTemplate | None = None
        self._special_re: re.Pattern | None = None
        self._piece_buf = ctypes.create_string_buffer(256)
        self._one = None
        self._abort_token: CancelToken | None = None
        self._abort_cb = None

    # ------------------------------------------------------------------ loading
    @property
    def loaded(self) -> bool:
        return self._ctx is not None

    def load(self, _loader: Callable[[int], tuple[object, object]] | None = None) -> LoadReport:
        """Validate the file, then load it with as many GPU layers as fit, falling back."""
        if self.report is not None:
            return self.report
        started = time.perf_counter()
        self.info = inspect_gguf(self.path)
        check_memory(self.info)
        ll = _llama()
        _quiet_llama_logs()
        ll.llama_backend_init()
        total = self.info.layers + 1
        gpu = gpu_offload_supported()
        attempts: list[str] = []
        loader = _loader or self._load_with
        estimate = None
        if gpu and self.gpu_layers_requested < 0:
            estimate = fit_estimate(self.info, self.n_ctx_requested)
        for ngl in layer_plan(self.gpu_layers_requested, total, gpu, estimate):
            try:
                model, ctx = loader(ngl)
            except MemoryError as exc:
                attempts.append(f"{ngl} GPU layers: {exc}")
                continue
            self._model, self._ctx, used = model, ctx, ngl
            break
        else:
            raise ModelLoadError(
                f"'{self.path.name}' could not be loaded ({'; '.join(attempts)}). The computer may "
                "not have enough memory for it: choose a smaller model or a smaller context size."
            )
        if _loader is None:
            self._vocab = ll.llama_model_get_vocab(self._model)
            self._one = (ll.llama_token * 1)()
            self._abort_cb = ll.ggml_abort_callback(
                lambda _data: self._abort_token is not None and self._abort_token.cancelled
            )
            self.n_ctx = ll.llama_n_ctx(self._ctx)
        else:
            self.n_ctx = self.n_ctx_requested
        warning = None
        if self.check_template:
            self.template = ChatTemplate(**self.template_facts())
            warning = self.template.check()
        if attempts:
            log.warning("model load fell back: %s", "; ".join(attempts))
        self.report = LoadReport(
            model=self.info.name,
            path=str(self.path),
            load_s=time.perf_counter() - started,
            gpu_layers=min(used, total),
            total_layers=total,
            device="GPU" if used else "CPU",
            n_ctx=self.n_ctx,
            attempts=tuple(attempts),
            warning=warning,
        )
        return self.report

    def _load_with(self, ngl: int):
        ll = _llama()
        mparams = ll.llama_model_default_params()
        mparams.n_gpu_layers = ngl
        model = ll.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not model:
            raise MemoryError("the model did not load")
        cparams = ll.llama_context_default_params()
        n_train = ll.llama_model_n_ctx_train(model)
        cparams.n_ctx = min(self.n_ctx_requested, n_train) if n_train > 0 else self.n_ctx_requested
        # Prompt slices: large on the GPU (fewer launches); on the CPU a 512-token slice of an 8B
        # model takes seconds, so there llama.cpp's abort callback also stops a slice midway.
        self.n_batch = self.n_batch or (2048 if ngl else 512)
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = min(self.n_batch, 512)
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        cparams.no_perf = True
        cparams.flash_attn_type = (
            ll.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if (self.flash_attn and ngl)
            else ll.LLAMA_FLASH_ATTN_TYPE_AUTO
        )
        ctx = ll.llama_init_from_model(model, cparams)
        if not ctx:
            ll.llama_model_free(model)
            raise MemoryError("no memory for its context")
        return model, ctx

    def template_facts(self) -> dict:
        """What a ChatTemplate needs from the loaded model: the file's template, the file's name,
        the texts of BOS and EOS, and the standard family its control tokens belong to."""
        return {
            "source": self.info.chat_template,
            "file_name": self.path.name,
            "bos": self._token_text("bos"),
            "eos": self._token_text("eos"),
            "family": family_for(self._is_one_token) if self._vocab is not None else "chatml",
        }

    def _is_one_token(self, text: str) -> bool:
        return len(self.tokenize(text, special=True)) == 1

    def close(self) -> None:
        if self.template is not None:
            self.template.close()
            self.template = None
        if self._ctx is not None and self._vocab is not None:
            ll = _llama()
            self._detach_sampler()
            ll.llama_free(self._ctx)
            ll.llama_model_free(self._model)
        self._ctx = self._model = self._vocab = None
        self._cached = []
        self.report = None

    # ------------------------------------------------------------------ text <-> tokens
    def render(self, messages: list[dict[str, str]], cancel: CancelToken | None = None) -> str:
        """The conversation in the model's own chat format, ending where the answer starts.

        The file's template runs bounded (time, size, memory); one that fails is replaced by a
        standard template and the report's warning says why. Raises Cancelled only when
        `cancel` is set while the file's template runs."""
        if not self.loaded:
            self.load()
        if self.template is None:  # a child engine whose parent runs the template
            self.template = ChatTemplate(**self.template_facts())
        prompt = self.template.render(messages, cancel)
        self.report = with_note(self.report, self.template.note)
        return prompt

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        ll = _llama()
        data = text.encode("utf-8")
        capacity = len(data) + 16
        buf = (ll.llama_token * capacity)()
        n = ll.llama_tokenize(self._vocab, data, len(data), buf, capacity, False, special)
        if n < 0:
            buf = (ll.llama_token * -n)()
            n = ll.llama_tokenize(self._vocab, data, len(data), buf, -n, False, special)
        return list(buf[:n])

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text, special=False))

    def prompt_length(self, prompt: str) -> int:
        """How many tokens generate() evaluates for this rendered prompt (BOS included)."""
        return len(self._prompt_tokens(prompt))

    def _prompt_tokens(self, prompt: str) -> list[int]:
        ll = _llama()
        tokens = self.tokenize(prompt, special=True)
        if ll.llama_vocab_get_add_bos(self._vocab):
            bos = ll.llama_vocab_bos(self._vocab)
            if not tokens or tokens[0] != bos:
                tokens.insert(0, bos)
        return tokens

    def assemble(self, system, question, history, hits, max_answer_tokens, sources):
        """The conversation and the hits it quotes, counted and defused in this model's tokens
        (prompt.assemble): one call from the chat session, wherever this engine runs."""
        from app.core.prompt import assemble

        return assemble(self, system, question, history, hits, max_answer_tokens, sources)

    def neutralize(self, text: str) -> str:
        """Make untrusted text (documents, questions) unable to spell the model's control
        tokens (<|im_end|>, <|start_header_id|>...): a zero-width space breaks each occurrence."""
        if self._special_re is None:
            self._special_re = self._control_token_pattern()
        if self._special_re.pattern == "(?!)":
            return text
        return self._special_re.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)

    def _control_token_pattern(self) -> re.Pattern:
        ll = _llama()
        texts = set()
        for tok in range(ll.llama_vocab_n_tokens(self._vocab)):
            if ll.llama_vocab_get_attr(self._vocab, tok) & (
                ll.LLAMA_TOKEN_ATTR_CONTROL | ll.LLAMA_TOKEN_ATTR_USER_DEFINED
            ):
                piece = self._piece(tok, special=True).decode("utf-8", "replace")
                if len(piece) > 1 and not piece.isspace():
                    texts.add(piece)
        texts.update({"<|im_start|>", "<|im_end|>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"})
        alternatives = "|".join(re.escape(t) for t in sorted(texts, key=len, reverse=True))
        return re.compile(alternatives or "(?!)")

    def _token_text(self, which: str) -> str:
        ll = _llama()
        if self._vocab is None:
            return ""
        tok = ll.llama_vocab_bos(self._vocab) if which == "bos" else ll.llama_vocab_eos(self._vocab)
        return self._piece(tok, special=True).decode("utf-8", "replace") if tok >= 0 else ""

    def _piece(self, token: int, special: bool = False) -> bytes:
        ll = _llama()
        n = ll.llama_token_to_piece(self._vocab, token, self._piece_buf, 256, 0, special)
        if n < 0:
            big = ctypes.create_string_buffer(-n)
            n = ll.llama_token_to_piece(self._vocab, token, big, -n, 0, special)
            return big.raw[:n]
        return self._piece_buf.raw[:n]

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        prompt: str,
        cancel: CancelToken,
        max_tokens: int = 512,
        temperature: float = 0.2,
        stop_at_eog: bool = True,
        progress: bool = False,
    ) -> Iterator[str | Generated | Prefill]:
        """Yield text pieces as they are made, then one Generated with the figures.
        stop_at_eog=False decodes all max_tokens, as llama-bench's tg test does (benchmarks).
        progress=True also yields a Prefill after each slice of a prompt that takes several.

        Raises Cancelled only before the first token; after it, a cancel ends the stream with
        stop_reason 'cancelled'. Reuses the KV cache for the prompt prefix shared with the
        last call.
        """
        if not self.loaded:
            self.load()
        ll = _llama()
        started = time.perf_counter()
        tokens = self._prompt_tokens(prompt)
        if len(tokens) >= self.n_ctx:
            raise PromptTooLong(
                f"The question and its sources take {len(tokens)} tokens; the "
                f"model's context holds {self.n_ctx}."
            )
        max_tokens = min(max_tokens, self.n_ctx - len(tokens))
        ctx, vocab = self._ctx, self._vocab
        mem = ll.llama_get_memory(ctx)

        # Keep the KV entries of the longest shared prefix (at least one token is re-evaluated,
        # since sampling needs fresh logits).
        keep = 0
        limit = min(len(self._cached), len(tokens) - 1)
        while keep < limit and self._cached[keep] == tokens[keep]:
            keep += 1
        if keep == 0:
            ll.llama_memory_clear(mem, True)
        else:
            ll.llama_memory_seq_rm(mem, 0, keep, -1)
        self._cached = tokens[:keep]

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        one = self._one
        one_batch = ll.llama_batch_get_one(one, 1)
        sample, is_eog, decode = ll.llama_sampler_sample, ll.llama_vocab_is_eog, ll.llama_decode
        piece = self._piece
        produced = 0
        first_at = None
        stop = "length"
        sampler, owned = self._sampler(temperature)  # before the prefill: it samples its end
        overlap = self.overlap_decode
        if overlap is None:
            overlap = bool(self.report and self.report.gpu_layers >= self.report.total_layers)
        try:
            for done in self._prefill(tokens, keep, cancel):
                if progress and len(tokens) - keep > self.n_batch:
                    yield Prefill(done, len(tokens))
            prefilled = time.perf_counter()
            while produced < max_tokens:
                tok = sample(sampler, ctx, -1)  # waits for the step before
                if stop_at_eog and is_eog(vocab, tok):
                    stop = "eog"
                    break
                produced += 1
                if first_at is None:
                    first_at = time.perf_counter()
                one[0] = tok
                if overlap:
                    # On a GPU llama_decode only queues the step: the model computes the next
                    # token while this one becomes text and goes to the reader, instead of
                    # waiting for that Python work (measured in bench/NOTES.md).
                    # On the CPU decode does the work before returning, so the text would reach
                    # the reader one token late: there the order stays.
                    decoded = decode(ctx, one_batch) == 0
                text = decoder.decode(piece(tok))
                if text:
                    yield text
                if not overlap:
                    if cancel.cancelled:
                        stop = "cancelled"
                        break
                    decoded = decode(ctx, one_batch) == 0
                if not decoded:
                    stop = "length"
                    break
                self._cached.append(tok)
                if cancel.cancelled:
                    stop = "cancelled"
                    break
            tail = decoder.decode(b"", final=True)
            if tail:
                yield tail
        finally:
            if owned:
                ll.llama_sampler_free(sampler)
        ended = time.perf_counter()
        first_at = first_at or ended
        decode_s = ended - first_at
        yield Generated(
            prompt_tokens=len(tokens),
            completion_tokens=produced,
            prefill_ms=(prefilled - started) * 1000,
            ttft_ms=(first_at - started) * 1000,
            tokens_per_s=(produced - 1) / decode_s if produced > 1 and decode_s > 0 else 0.0,
            stop_reason=stop,
            reused_tokens=keep,
        )

    def _prefill(self, tokens: list[int], start: int, cancel: CancelToken) -> Iterator[int]:
        """Evaluate tokens[start:] in n_batch slices, yielding the tokens done after each; the
        cancel flag is checked between slices and, through llama.cpp's abort callback (set only
        here: it runs per graph node), inside them on the CPU."""
        ll = _llama()
        ctx = self._ctx
        arr = (ll.llama_token * len(tokens))(*tokens)
        base = ctypes.addressof(arr)
        size = ctypes.sizeof(ll.llama_token)
        self._abort_token = cancel
        ll.llama_set_abort_callback(ctx, self._abort_cb, None)
        try:
            for i in range(start, len(tokens), self.n_batch):
                if cancel.cancelled:
                    raise Cancelled()
                n = min(self.n_batch, len(tokens) - i)
                ptr = ctypes.cast(base + i * size, ctypes.POINTER(ll.llama_token))
                status = ll.llama_decode(ctx, ll.llama_batch_get_one(ptr, n))
                if status != 0:
                    # Drop whatever the failed or aborted slice left in the KV cache.
                    ll.llama_memory_seq_rm(ll.llama_get_memory(ctx), 0, len(self._cached), -1)
                    if cancel.cancelled:
                        raise Cancelled()
                    raise RuntimeError(f"llama.cpp could not evaluate the prompt (status {status})")
                self._cached.extend(tokens[i : i + n])
                yield i + n
            ll.llama_synchronize(ctx)  # the GPU runs the last slice asynchronously: wait for it
        finally:
            ll.llama_set_abort_callback(ctx, ll.ggml_abort_callback(), None)
            self._abort_token = None

    def _sampler(self, temperature: float) -> tuple[object, bool]:
        """The sampler chain for one answer, and whether the caller must free it.

        With layers on the GPU the chain is attached to the context (llama_set_sampler), so
        llama.cpp samples inside the graph: no copy of the whole vocabulary's logits to the host
        and no CPU pass over them for every token (128k entries for Llama 3), which llama-bench's
        tg figure never pays. The attached chain stays for the next answer at the same
        temperature (re-attaching makes llama.cpp re-plan its graph)."""
        ll = _llama()
        if self._attached is not None and self._attached[0] == temperature:
            return self._attached[1], False
        self._detach_sampler()
        chain = self._make_sampler(temperature)
        wanted = self.backend_sampling
        if wanted is None:
            wanted = bool(self.report and self.report.gpu_layers)
        if wanted and ll.llama_set_sampler(self._ctx, 0, chain):
            self._attached = (temperature, chain)
            return chain, False
        return chain, True

    def _detach_sampler(self) -> None:
        if self._attached is not None:
            ll = _llama()
            ll.llama_set_sampler(self._ctx, 0, None)
            ll.llama_sampler_free(self._attached[1])
            self._attached = None

    def _make_sampler(self, temperature: float):
        ll = _llama()
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        if temperature <= 0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
        else:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(40))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(0.95, 1))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_min_p(0.05, 1))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(temperature))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(self.seed))
        return chain


def with_note(report: LoadReport | None, note: str | None) -> LoadReport | None:
    """The report with the chat template's note as its warning (unchanged when none)."""
    if report is None or note is None or report.warning == note:
        return report
    return dataclasses.replace(report, warning=note)


def check_memory(info: GGUFInfo) -> None:
    """Refuse a model that cannot possibly fit (file larger than RAM + GPU memory)."""
    try:
        import psutil

        total = psutil.virtual_memory().total
    except ImportError:  # the GPU machine may lack psutil: skip the check
        return
    vram = _gpu_memory_bytes()
    if info.size > total + vram:
        gib = 1024**3
        on_gpu = f" and {vram / gib:.1f} GiB on its GPU" if vram else ""
        raise ModelFileError(
            f"'{info.path.name}' needs about {info.size / gib:.1f} GiB but this computer has "
            f"{total / gib:.1f} GiB of memory{on_gpu}. "
            "Choose a smaller model (a 3B or 8B Q4_K_M)."
        )


def _gpu_memory_bytes() -> int:
    """Total memory of the first NVIDIA GPU, from nvidia-smi (not torch: importing torch's CUDA
    runtime into the process that runs llama.cpp's is slow and needless); 0 when unknown."""
    if not gpu_offload_supported():
        return 0
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return int(out.split()[0]) * 1024 * 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return 0
