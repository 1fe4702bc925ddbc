"""The models already on the computer are found where the desktop apps keep them, named, and
given a fit estimate; the walk stays bounded and reads headers only."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from app.config import default_llm_path
from app.core.gguf_check import inspect_gguf
from app.core.model_catalog import (
    CUDA_RESERVE,
    GiB,
    Memory,
    MiB,
    compute_buffer_bytes,
    estimate_fit,
    kv_bytes_per_layer,
    output_bytes,
    scan,
)
from tests.gguf_shapes import write_shape

NO_GPU = Memory(0, 0, 8 * GiB, 16 * GiB)


def big_gpu(free_gib: float) -> Memory:
    return Memory(int(free_gib * GiB), 80 * GiB, 64 * GiB, 128 * GiB, "Test GPU", True)


def _mk(path: Path, shape="1b", **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_shape(path, shape, **kw)


@pytest.fixture
def machine(tmp_path):
    """A home folder laid out as LM Studio, GPT4All, Jan, Ollama, the Hugging Face cache and a
    person leave it (sparse files: no disk used)."""
    home = tmp_path / "home"
    _mk(home / ".lmstudio/models/bartowski/Llama-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf")
    _mk(home / ".local/share/nomic.ai/GPT4All/Phi-3-mini-4k-instruct.Q4_0.gguf", "tiny")
    _mk(home / "jan/models/qwen2.5-3b/model.gguf", "3b", name="Qwen2.5 3B Instruct")
    blob = home / ".cache/huggingface/hub/models--org--Mistral-GGUF/blobs/abc123"
    _mk(blob, "tiny", name="mistral")
    snap = home / ".cache/huggingface/hub/models--org--Mistral-GGUF/snapshots/0123/"
    snap.mkdir(parents=True)
    (snap / "Mistral-7B-Instruct-v0.3.Q4_K_M.gguf").symlink_to(blob)
    digest = "a" * 64
    _mk(home / f".ollama/models/blobs/sha256-{digest}", "tiny", name="llama3.2 3b")
    manifest = home / ".ollama/models/manifests/registry.ollama.ai/library/llama3.2/3b"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        json.dumps(
            {
                "layers": [
                    {
                        "mediaType": "application/vnd.ollama.image.license",
                        "digest": "sha256:" + "b" * 64,
                    },
                    {
                        "mediaType": "application/vnd.ollama.image.model",
                        "digest": "sha256:" + digest,
                    },
                ]
            }
        )
    )
    _mk(home / "Models/gemma-2-2b-it-Q8_0.gguf", "tiny", template=None)
    _mk(home / "Downloads/SmolLM3-Q4_K_M.gguf", "tiny")
    # not chat models, or not models: left out
    _mk(home / "Downloads/mmproj-model-f16.gguf", "tiny", architecture="clip")
    _mk(home / "Downloads/big-00002-of-00003.gguf", "tiny")
    (home / "Downloads/stub.gguf").write_bytes(b"GGUF" + b"\0" * 100)
    (home / "Downloads/notes.txt").write_text("not a model")
    # too deep for ~/Downloads (two folders down at most)
    _mk(home / "Downloads/a/b/c/deep-Q4_K_M.gguf", "tiny")
    return home


def _scan(home: Path, memory=NO_GPU, **kw):
    return scan(home=home, env={}, memory=memory, embedded=default_llm_path(), **kw)


def test_models_are_found_where_each_app_keeps_them(machine):
    catalog = _scan(machine)
    by_source = {(e.source, e.name) for e in catalog.models}
    assert by_source >= {
        ("LM Studio", "Llama-3.2-1B-Instruct"),
        ("GPT4All", "Phi-3-mini-4k-instruct"),
        ("Jan", "Qwen2.5 3B Instruct"),  # a generic file name: the metadata's name
        ("Hugging Face cache", "Mistral-7B-Instruct-v0.3"),
        ("Ollama", "llama3.2:3b"),  # named by its manifest, not its hash
        ("~/Models", "gemma-2-2b-it"),
        ("~/Downloads", "SmolLM3"),
        ("built in", "SmolLM2-135M-Instruct"),
    }
    names = {e.name for e in catalog.models}
    assert not names & {"mmproj-model-f16", "big-00002-of-00003", "stub", "deep"}
    assert len(catalog.models) == 8
    assert catalog.models[-1].source == "built in"
    assert not catalog.cut_short


def test_each_entry_says_what_the_model_is(machine):
    entries = {e.name: e for e in _scan(machine).models}
    llama = entries["Llama-3.2-1B-Instruct"]
    assert llama.family == "llama"
    assert llama.quant == "Q4_K_M"
    assert 1.0e9 < llama.params < 2.0e9
    assert llama.n_ctx_train == 8192
    assert llama.chat_template
    assert llama.size_bytes == llama.path.stat().st_size
    assert not entries["gemma-2-2b-it"].chat_template
    smol = entries["SmolLM2-135M-Instruct"]
    assert (smol.quant, smol.family, smol.layers) == ("Q4_1", "llama", 31)
    assert 130e6 < smol.params < 140e6
    assert smol.to_json()["fits"] == "cpu"


def test_a_damaged_model_is_listed_with_its_problem(machine):
    bad = machine / "Models/cut-Q4_K_M.gguf"
    with open(default_llm_path(), "rb") as fh:
        bad.write_bytes(fh.read(2 << 20))
    entry = next(e for e in _scan(machine).models if e.name == "cut")
    assert not entry.usable and "incomplete" in entry.problem
    assert entry.fit_words() == "cannot be used"


def test_the_same_file_twice_is_listed_once(machine):
    target = machine / ".lmstudio/models/bartowski/Llama-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf"
    (machine / "Models/link.gguf").symlink_to(target)
    catalog = _scan(machine, extra=[(target, "in Settings")])
    same = [e for e in catalog.models if e.path.resolve() == target.resolve()]
    assert [e.source for e in same] == ["in Settings"]


def test_the_walk_is_bounded_by_depth_links_and_time(machine):
    loop = machine / "Models/loop"
    loop.symlink_to(machine / "Models")  # a linked folder is never entered
    (machine / "Models/far").symlink_to("/")
    started = time.monotonic()
    catalog = _scan(machine)
    assert time.monotonic() - started < 5
    assert sum(e.name == "gemma-2-2b-it" for e in catalog.models) == 1
    cut = _scan(machine, budget_s=0)
    assert cut.cut_short and len(cut.models) < len(catalog.models)


def test_nothing_found_on_an_empty_machine(tmp_path):
    catalog = scan(home=tmp_path, env={}, memory=NO_GPU, embedded=None)
    assert catalog.models == [] and not catalog.cut_short


# ------------------------------------------------------------------------------ fit estimate
@pytest.fixture(scope="module")
def eight_b(tmp_path_factory):
    path = tmp_path_factory.mktemp("shape") / "shape-8b.gguf"
    return inspect_gguf(write_shape(path, "8b", vocab=128256))


def test_no_usable_gpu_means_cpu(eight_b):
    fit = estimate_fit(eight_b, NO_GPU, 4096)
    assert (fit.fits, fit.gpu_layers, fit.total_layers) == ("cpu", 0, 33)
    no_offload = Memory(40 * GiB, 80 * GiB, 64 * GiB, 128 * GiB, "GPU", gpu_usable=False)
    assert estimate_fit(eight_b, no_offload, 4096).fits == "cpu"


def test_a_big_gpu_takes_every_layer_and_the_output(eight_b):
    fit = estimate_fit(eight_b, big_gpu(40), 4096)
    assert (fit.fits, fit.gpu_layers) == ("gpu", 33)
    assert fit.gpu_bytes > 4 * GiB and fit.cpu_bytes < GiB  # only the token embeddings stay


def test_partial_offload_counts_layers_as_llama_cpp_places_them(eight_b):
    """Free memory for exactly 10 layers with their KV cache, beside the fixed costs."""
    kv = kv_bytes_per_layer(eight_b, 4096)
    layer = eight_b.block_bytes[31]
    fixed = CUDA_RESERVE + compute_buffer_bytes(eight_b)
    memory = Memory(fixed + 10 * (layer + kv) + MiB, 80 * GiB, 64 * GiB, 128 * GiB, "GPU", True)
    fit = estimate_fit(eight_b, memory, 4096)
    assert (fit.fits, fit.gpu_layers, fit.total_layers) == ("partial", 10, 33)
    assert "10 of 33 layers" in _entry_words(fit)
    # less context leaves room for more layers; less memory for fewer
    assert estimate_fit(eight_b, memory, 512).gpu_layers > 10
    less = Memory(fixed + 9 * (layer + kv), 80 * GiB, 64 * GiB, 128 * GiB, "GPU", True)
    assert estimate_fit(eight_b, less, 4096).gpu_layers == 9


def test_every_layer_but_no_room_for_the_output_is_partial(eight_b):
    kv = kv_bytes_per_layer(eight_b, 4096)
    fixed = CUDA_RESERVE + compute_buffer_bytes(eight_b)
    layers = sum(eight_b.block_bytes.values()) + 32 * kv
    memory = Memory(fixed + layers + output_bytes(eight_b) // 2, 80 * GiB, 64 * GiB, 128 * GiB,
                    "GPU", True)  # fmt: skip
    fit = estimate_fit(eight_b, memory, 4096)
    assert (fit.fits, fit.gpu_layers) == ("partial", 32)


def test_too_little_ram_for_the_rest_is_said(eight_b):
    tiny_ram = Memory(0, 0, 1 * GiB, 2 * GiB)
    fit = estimate_fit(eight_b, tiny_ram, 4096)
    assert not fit.enough_memory


def test_kv_cache_follows_grouped_query_attention(eight_b):
    # 8 KV heads of 128 dims, K and V, 2 bytes each: 4 KiB a token a layer
    assert kv_bytes_per_layer(eight_b, 4096) == 4096 * 4096


def _entry_words(fit) -> str:
    from app.core.model_catalog import ModelEntry

    return ModelEntry(Path("x.gguf"), "x", "test", fit=fit).fit_words()


# ------------------------------------------------------------------------------ the command
def test_models_json_lists_what_the_issue_promises(machine, tmp_path, monkeypatch, capsys):
    from app.cli import main

    monkeypatch.setenv("HOME", str(machine))
    monkeypatch.setenv("CONFIDANT_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("CONFIDANT_MACHINE_SETTINGS", str(tmp_path / "none.toml"))
    for var in ("XDG_DATA_HOME", "HF_HOME", "HF_HUB_CACHE", "OLLAMA_MODELS", "LMSTUDIO_MODELS"):
        monkeypatch.delenv(var, raising=False)
    assert main(["models", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    keys = {"path", "name", "params", "quant", "size_bytes", "n_ctx_train", "fits",
            "gpu_layers_est", "source"}  # fmt: skip
    assert out["models"] and all(keys <= set(m) for m in out["models"])
    assert {m["fits"] for m in out["models"]} <= {"gpu", "partial", "cpu"}
    ollama = next(m for m in out["models"] if m["source"] == "Ollama")
    assert ollama["name"] == "llama3.2:3b" and os.path.basename(ollama["path"]).startswith(
        "sha256-"
    )
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "Llama-3.2-1B-Instruct" in text and "SmolLM2-135M-Instruct (in use)" in text
