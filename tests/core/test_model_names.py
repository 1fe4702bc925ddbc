from app.core.model_names import display_name


def test_the_files_name_without_its_quantization():
    assert display_name("/m/SmolLM2-135M-Instruct.Q4_1.gguf", "Smollm2 135M 8k") == (
        "SmolLM2-135M-Instruct"
    )
    assert display_name("Llama-3.2-3B-Instruct-Q4_K_M.gguf") == "Llama-3.2-3B-Instruct"
    assert display_name("mistral-7b-instruct-v0.2.f16.gguf") == "mistral-7b-instruct-v0.2"


def test_hashes_and_generic_names_fall_back_to_the_metadata():
    blob = "sha256-6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa"
    assert display_name(f"/ollama/blobs/{blob}", "Llama 3.2 3B Instruct") == (
        "Llama 3.2 3B Instruct"
    )
    assert display_name("/x/model.gguf", "Qwen2.5 7B") == "Qwen2.5 7B"
    assert display_name(None, "") == "model"
