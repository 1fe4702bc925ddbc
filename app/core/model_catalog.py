"""The chat models already on this computer, and whether each fits the graphics card.

Looks where the desktop model apps keep their GGUF files (LM Studio, GPT4All, Jan, Ollama's
blobs named through its manifests, the Hugging Face cache), in ~/Models and ~/Downloads, in
Confidant's own download folder, plus the embedded model. Each file's header is read with
inspect_gguf (never the weights); the walk is bounded in depth, folders, files and time, never
follows a linked folder, and contacts nothing.

The fit estimate follows how llama.cpp places a model with n_gpu_layers = N: the last N
repeating layers go to the GPU with their share of the KV cache, the output layer goes too only
when N is every layer plus one, the token embeddings stay on the CPU; the GPU also needs a
compute buffer and the CUDA context. Free memory comes from nvidia-smi (every NVIDIA GPU: llama.cpp
splits layers across them) and psutil; no CUDA library is loaded in this process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.core.gguf_check import GGUFInfo, ModelFileError, inspect_gguf
from app.core.model_names import display_name
from app.core.safe_text import printable

MiB = 1 << 20
GiB = 1 << 30
# GPU memory the model's process needs besides weights, KV cache and compute buffer: the CUDA
# context, cuBLAS's workspace, the allocator's slack.
CUDA_RESERVE = 640 * MiB
N_UBATCH = 512  # the engine's micro-batch (app/core/llm.py: n_ubatch = min(n_batch, 512))
# Bounds of the walk: a home with a million files must not stall the picker.
MAX_DIRS_PER_ROOT = 3000
MAX_MODELS = 400
DEFAULT_TIME_BUDGET_S = 4.0
MIN_GGUF_BYTES = 1 << 20  # smaller files are test stubs or vocabularies, not chat models
# Architectures that are not chat models: vision projectors, encoders, vocoders.
NOT_CHAT = {
    "clip", "bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder",
    "wavtokenizer-dec", "mllama_vision",
}  # fmt: skip
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)

# llama.cpp's llama_ftype (general.file_type) -> the name people see in file names.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}  # fmt: skip
# ggml tensor types, for files without general.file_type (the type holding the most bytes).
TENSOR_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 10: "Q2_K",
    11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 30: "BF16",
}  # fmt: skip
_QUANT_IN_NAME = re.compile(r"(?:^|[.\-_])((?:I?Q\d[\w]*?)|F16|F32|BF16)(?:\.gguf)?$", re.I)


# ------------------------------------------------------------------------------ where to look
@dataclass(frozen=True)
class Root:
    path: Path
    source: str  # who put models there, in words: "LM Studio", "Hugging Face cache"...
    depth: int  # folders below `path` that are walked


def search_roots(home: Path | None = None, env: dict | None = None) -> list[Root]:
    """Folders where GGUF models are usually kept, on this platform (existing or not)."""
    home = home or Path.home()
    env = os.environ if env is None else env
    roots: list[Root] = []

    def add(path: str | Path, source: str, depth: int) -> None:
        roots.append(Root(Path(path).expanduser(), source, depth))

    for p in ("~/.lmstudio/models", "~/.cache/lm-studio/models"):
        add(str(p).replace("~", str(home), 1), "LM Studio", 4)
    if env.get("LMSTUDIO_MODELS"):
        add(env["LMSTUDIO_MODELS"], "LM Studio", 4)
    local = env.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
    appdata = env.get("APPDATA") or str(home / "AppData" / "Roaming")
    xdg = env.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    mac_support = home / "Library" / "Application Support"
    for p in (
        Path(xdg) / "nomic.ai" / "GPT4All",
        mac_support / "nomic.ai" / "GPT4All",
        Path(local) / "nomic.ai" / "GPT4All",
    ):
        add(p, "GPT4All", 2)
    for p in (
        home / "jan" / "models",
        Path(xdg) / "Jan" / "data" / "models",
        mac_support / "Jan" / "data" / "models",
        Path(appdata) / "Jan" / "data" / "models",
    ):
        add(p, "Jan", 5)
    hf = env.get("HF_HUB_CACHE") or (
        str(Path(env["HF_HOME"]) / "hub")
        if env.get("HF_HOME")
        else str(home / ".cache" / "huggingface" / "hub")
    )
    add(hf, "Hugging Face cache", 0)  # walked by its own layout, see _hf_cache
    for p in ("Models", "models", "Downloads"):
        add(home / p, f"~/{p}", 2 if p == "Downloads" else 4)
    return roots


def ollama_roots(home: Path | None = None, env: dict | None = None) -> list[Path]:
    home = home or Path.home()
    env = os.environ if env is None else env
    out = [Path(env["OLLAMA_MODELS"])] if env.get("OLLAMA_MODELS") else []
    out += [home / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]
    return out


class _Clock:
    def __init__(self, budget_s: float) -> None:
        self.deadline = time.monotonic() + budget_s
        self.cut_short = False

    def out(self) -> bool:
        if time.monotonic() > self.deadline:
            self.cut_short = True
        return self.cut_short


def _walk(root: Path, depth: int, clock: _Clock) -> Iterator[Path]:
    """GGUF files under `root`, `depth` folders down, never into a linked folder or a hidden
    one, at most MAX_DIRS_PER_ROOT folders. A linked file is fine (LM Studio links models)."""

    def gguf(entry: os.DirEntry) -> bool:
        return entry.name.lower().endswith(".gguf") and entry.is_file()

    return _tree(root, depth, clock, gguf, hidden=False)


def _walk_files(root: Path, depth: int, clock: _Clock) -> Iterator[Path]:
    """Every plain file under `root` (Ollama's manifests), hidden folders included."""
    return _tree(root, depth, clock, lambda e: e.is_file(follow_symlinks=False), hidden=True)


def _tree(root: Path, depth: int, clock: _Clock, wanted, hidden: bool) -> Iterator[Path]:
    """Files under `root` that `wanted` keeps, `depth` folders down, in name order, never into
    a linked folder, at most MAX_DIRS_PER_ROOT folders and within the clock's budget."""
    pending = [(root, 0)]
    seen = 0
    while pending and seen < MAX_DIRS_PER_ROOT and not clock.out():
        folder, level = pending.pop()
        seen += 1
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if level < depth and (hidden or not entry.name.startswith(".")):
                        pending.append((Path(entry.path), level + 1))
                elif wanted(entry):
                    yield Path(entry.path)
            except OSError:
                continue


def _hf_cache(hub: Path, clock: _Clock) -> Iterator[Path]:
    """hub/models--ORG--NAME/snapshots/REV/**.gguf: the snapshot files link to blobs."""
    try:
        repos = sorted(p for p in hub.iterdir() if p.name.startswith("models--"))
    except OSError:
        return
    for repo in repos[:MAX_DIRS_PER_ROOT]:
        if clock.out():
            return
        yield from _walk(repo / "snapshots", 3, clock)


def _ollama(models: Path, clock: _Clock) -> Iterator[tuple[Path, str]]:
    """(blob, "name:tag") for each model in Ollama's manifests (registry/namespace/model/tag)."""
    manifests = models / "manifests"
    if not manifests.is_dir():
        return
    for manifest in _walk_files(manifests, 4, clock):
        try:
            if manifest.stat().st_size > 1 << 20:
                continue
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        layers = data.get("layers") if isinstance(data, dict) else None
        for layer in layers if isinstance(layers, list) else []:
            if not isinstance(layer, dict):
                continue
            if layer.get("mediaType") != "application/vnd.ollama.image.model":
                continue
            digest = str(layer.get("digest", ""))
            if not re.fullmatch(r"sha256[:-][0-9a-f]{64}", digest):
                continue
            blob = models / "blobs" / digest.replace(":", "-")
            parts = manifest.relative_to(manifests).parts  # host, namespace, model, tag
            model, tag = (parts[-2], parts[-1]) if len(parts) >= 2 else (parts[-1], "latest")
            namespace = parts[-3] if len(parts) >= 3 else "library"
            name = model if namespace == "library" else f"{namespace}/{model}"
            yield blob, printable(f"{name}:{tag}", 80)


# ------------------------------------------------------------------------------ memory
@dataclass(frozen=True)
class Memory:
    """What a model can use now: free GPU memory (summed over NVIDIA GPUs; Apple silicon's
    share of unified memory) and available RAM, in bytes."""

    gpu_free: int
    gpu_total: int
    ram_available: int
    ram_total: int
    gpu_name: str = ""
    gpu_usable: bool = False  # a GPU exists and this llama.cpp build can offload to it


def llama_build_offloads(env: dict | None = None) -> bool:
    """Whether the installed llama.cpp can offload to a GPU, told by its libraries' names
    (libggml-cuda, -metal, -vulkan, -hip) without loading them: a CUDA llama.cpp must not
    share a process with CUDA torch."""
    import importlib.util

    env = os.environ if env is None else env
    folders = []
    if env.get("LLAMA_CPP_LIB_PATH"):
        folders.append(Path(env["LLAMA_CPP_LIB_PATH"]))
    spec = importlib.util.find_spec("llama_cpp")
    if spec and spec.submodule_search_locations:
        folders.append(Path(next(iter(spec.submodule_search_locations))) / "lib")
    for folder in folders:
        try:
            names = [p.name.lower() for p in folder.iterdir()]
        except OSError:
            continue
        if any(
            k in n for n in names for k in ("ggml-cuda", "ggml-metal", "ggml-vulkan", "ggml-hip")
        ):
            return True
    return sys.platform == "darwin" and os.uname().machine == "arm64"  # Metal built in


def nvidia_memory() -> tuple[int, int, str]:
    """(free, total, name) over every NVIDIA GPU, from nvidia-smi; zeros when there is none."""
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=memory.free,memory.total,name",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0, 0, ""
    free = total = 0
    names = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        try:
            free += int(parts[0]) * MiB
            total += int(parts[1]) * MiB
        except (ValueError, IndexError):
            continue
        names.append(parts[2] if len(parts) > 2 else "GPU")
    label = f"{len(names)} x {names[0]}" if len(names) > 1 else (names[0] if names else "")
    return free, total, label


def detect_memory() -> Memory:
    try:
        import psutil

        vm = psutil.virtual_memory()
        ram_available, ram_total = int(vm.available), int(vm.total)
    except ImportError:
        ram_available = ram_total = 0
    offloads = llama_build_offloads()
    if sys.platform == "darwin":
        # Apple silicon: Metal may use about three quarters of the unified memory.
        usable = offloads and os.uname().machine == "arm64"
        share = min(ram_available, ram_total * 3 // 4) if usable else 0
        return Memory(share, ram_total * 3 // 4 if usable else 0, ram_available, ram_total,
                      "Apple GPU" if usable else "", usable)  # fmt: skip
    free, total, name = nvidia_memory()
    return Memory(free, total, ram_available, ram_total, name, bool(offloads and total))


# ------------------------------------------------------------------------------ the estimate
@dataclass(frozen=True)
class Fit:
    fits: str  # "gpu" (every layer), "partial" (some layers), "cpu"
    gpu_layers: int  # layers on the GPU, counted as llama.cpp counts them (output layer too)
    total_layers: int
    gpu_bytes: int  # memory the model would take on the GPU
    cpu_bytes: int  # weights left in RAM
    enough_memory: bool  # the part left for RAM fits in available RAM


def kv_bytes_per_layer(info: GGUFInfo, n_ctx: int) -> int:
    """One layer's K and V cache for `n_ctx` tokens, in f16 (llama.cpp's default)."""
    n_embd = info.meta_int("embedding_length")
    heads = max(1, info.meta_int("attention.head_count", 1))
    heads_kv = info.meta_int("attention.head_count_kv", heads) or heads
    head_dim = n_embd // heads if n_embd else 0
    k = (info.meta_int("attention.key_length", head_dim) or head_dim) * heads_kv
    v = (info.meta_int("attention.value_length", head_dim) or head_dim) * heads_kv
    return n_ctx * (k + v) * 2


def output_bytes(info: GGUFInfo) -> int:
    """The output layer's weights; a model that ties them to the token embeddings gets a copy
    of those on the output layer's device."""
    other = info.other_bytes
    head = other.get("output.weight") or other.get("token_embd.weight", 0)
    return head + sum(
        v for k, v in other.items() if k.startswith("output") and k != "output.weight"
    )


def compute_buffer_bytes(info: GGUFInfo, n_ubatch: int = N_UBATCH) -> int:
    """The GPU's scratch space for one micro-batch: logits over the vocabulary plus the widest
    activations (a rule of thumb from llama.cpp's reservations with flash attention)."""
    vocab = info.meta_int("vocab_size") or _vocab_from_meta(info)
    n_ff = info.meta_int("feed_forward_length") or 4 * info.meta_int("embedding_length")
    n_embd = info.meta_int("embedding_length")
    return n_ubatch * 4 * (vocab + 2 * n_ff + 4 * n_embd) + 64 * MiB


def _vocab_from_meta(info: GGUFInfo) -> int:
    embd = info.other_bytes.get("token_embd.weight", 0)
    n_embd = info.meta_int("embedding_length")
    return embd * 2 // max(1, n_embd) if n_embd else 32000  # a rough guess: ~4 bits a weight


def estimate_fit(info: GGUFInfo, memory: Memory, n_ctx: int, file_bytes: int | None = None) -> Fit:
    """How many layers llama.cpp could put on the GPU now, with `n_ctx` tokens of context."""
    n_layer = info.layers
    total = n_layer + 1
    size = file_bytes if file_bytes is not None else info.size
    blocks = [info.block_bytes.get(i, 0) for i in range(n_layer)]
    kv = kv_bytes_per_layer(info, n_ctx)
    placed = 0
    weights = 0  # weights on the GPU
    gpu_bytes = 0
    if memory.gpu_usable and n_layer:
        budget = memory.gpu_free - CUDA_RESERVE - compute_buffer_bytes(info)
        for i in range(n_layer - 1, -1, -1):  # llama.cpp offloads the last layers first
            if gpu_bytes + blocks[i] + kv > budget:
                break
            gpu_bytes += blocks[i] + kv
            weights += blocks[i]
            placed += 1
        if placed == n_layer and gpu_bytes + output_bytes(info) <= budget:
            gpu_bytes += output_bytes(info)
            weights += output_bytes(info)
            placed = total
    cpu_weights = max(0, size - weights)
    cpu_need = cpu_weights + (n_layer - min(placed, n_layer)) * kv
    fits = "gpu" if placed == total else ("partial" if placed else "cpu")
    return Fit(fits, placed, total, gpu_bytes, cpu_weights,
               not memory.ram_available or cpu_need <= memory.ram_available)  # fmt: skip


# ------------------------------------------------------------------------------ the catalog
@dataclass
class ModelEntry:
    path: Path
    name: str
    source: str
    family: str = ""
    params: int = 0
    quant: str = ""
    size_bytes: int = 0
    n_ctx_train: int = 0
    chat_template: bool = False
    layers: int = 0
    fit: Fit | None = None
    problem: str = ""  # why this file cannot be used (damaged, cut short...)
    info: GGUFInfo | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        return not self.problem

    def to_json(self) -> dict:
        fit = self.fit
        return {
            "path": str(self.path),
            "name": self.name,
            "family": self.family,
            "params": self.params,
            "quant": self.quant,
            "size_bytes": self.size_bytes,
            "n_ctx_train": self.n_ctx_train,
            "chat_template": self.chat_template,
            "fits": fit.fits if fit else "cpu",
            "gpu_layers_est": fit.gpu_layers if fit else 0,
            "total_layers": fit.total_layers if fit else self.layers,
            "enough_memory": fit.enough_memory if fit else None,
            "source": self.source,
            "problem": self.problem or None,
        }

    def fit_words(self) -> str:
        """Whether it fits, for people."""
        if self.problem:
            return "cannot be used"
        fit = self.fit
        if fit is None:
            return ""
        if fit.fits == "gpu":
            words = "fits on the graphics card"
        elif fit.fits == "partial":
            words = f"{fit.gpu_layers} of {fit.total_layers} layers on the graphics card"
        else:
            words = "runs on the processor"
        if not fit.enough_memory:
            words += "; more than the free memory (slow or fails)"
        return words


def quant_name(info: GGUFInfo) -> str:
    ftype = info.metadata.get("general.file_type")
    if isinstance(ftype, int) and ftype in FILE_TYPES:
        return FILE_TYPES[ftype]
    if m := _QUANT_IN_NAME.search(info.path.name):
        return m.group(1).upper()
    if info.type_bytes:
        main = max(info.type_bytes, key=info.type_bytes.get)
        return TENSOR_TYPES.get(main, f"type {main}")
    return ""


def params_words(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    return str(n) if n else "?"


def describe(path: Path, source: str, memory: Memory, n_ctx: int, name: str = "") -> ModelEntry:
    """One model file's entry: header read (never the weights), fit estimated."""
    size = _split_size(path)
    try:
        info = inspect_gguf(path)
    except ModelFileError as exc:
        return ModelEntry(path, name or display_name(path), source, size_bytes=size,
                          problem=str(exc))  # fmt: skip
    ctx_train = info.meta_int("context_length")
    entry = ModelEntry(
        path=path,
        name=name or display_name(path, info.name),
        source=source,
        family=printable(info.architecture, 40),
        params=info.params,
        quant=quant_name(info),
        size_bytes=size,
        n_ctx_train=ctx_train,
        chat_template=info.chat_template is not None,
        layers=info.layers + 1,
        info=info,
    )
    entry.fit = estimate_fit(info, memory, min(n_ctx, ctx_train) if ctx_train else n_ctx, size)
    return entry


def _split_size(path: Path) -> int:
    """The file's size; for the first part of a split model (x-00001-of-00003.gguf), all parts."""
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    m = _SPLIT.search(path.name)
    if m and int(m.group(1)) == 1:
        for k in range(2, int(m.group(2)) + 1):
            part = path.with_name(_SPLIT.sub(f"-{k:05d}-of-{m.group(2)}.gguf", path.name))
            try:
                size += part.stat().st_size
            except OSError:
                break
    return size


@dataclass
class Catalog:
    models: list[ModelEntry]
    memory: Memory
    seconds: float
    cut_short: bool  # the time budget ran out before every folder was looked at

    def to_json(self) -> dict:
        m = self.memory
        return {
            "models": [e.to_json() for e in self.models],
            "memory": {
                "gpu": m.gpu_name or None,
                "gpu_free_bytes": m.gpu_free,
                "gpu_usable": m.gpu_usable,
                "ram_available_bytes": m.ram_available,
            },
            "seconds": round(self.seconds, 3),
            "cut_short": self.cut_short,
        }


def scan(
    n_ctx: int = 4096,
    extra: list[tuple[Path, str]] | None = None,
    home: Path | None = None,
    env: dict | None = None,
    memory: Memory | None = None,
    budget_s: float = DEFAULT_TIME_BUDGET_S,
    embedded: Path | None = None,
) -> Catalog:
    """Every chat model found, the embedded one last; `extra` (path, source) are listed first
    (the model in the settings, Confidant's downloads)."""
    started = time.monotonic()
    clock = _Clock(budget_s)
    memory = memory or detect_memory()
    found: list[tuple[Path, str, str]] = []  # path, source, name ("" = from the file)
    for path, source in extra or []:
        found.append((Path(path), source, ""))
    for models in ollama_roots(home, env):
        for blob, name in _ollama(models, clock):
            found.append((blob, "Ollama", name))
    for root in search_roots(home, env):
        if root.source == "Hugging Face cache":
            files = _hf_cache(root.path, clock)
        else:
            files = _walk(root.path, root.depth, clock)
        for path in files:
            m = _SPLIT.search(path.name)
            if m and int(m.group(1)) != 1:
                continue  # later parts of a split model: the first part stands for them
            found.append((path, root.source, ""))
            if len(found) >= MAX_MODELS:
                break
    if embedded:
        found.append((embedded, "built in", ""))
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    for path, source, name in found:
        try:
            key = os.path.realpath(path)
            if os.path.getsize(key) < MIN_GGUF_BYTES and source != "built in":
                continue
        except OSError:
            continue
        if key in seen:
            continue
        seen.add(key)
        if len(entries) >= MAX_MODELS or (clock.out() and entries):
            break
        entry = describe(path, source, memory, n_ctx, name)
        if entry.family in NOT_CHAT:
            continue
        entries.append(entry)
    return Catalog(entries, memory, time.monotonic() - started, clock.cut_short)
