"""The model-server client against the response shapes vLLM and llama-server send, recorded
as files (team_fixtures/), served by httpx's MockTransport: no server is needed. The client
against a real server (llama-cpp-python's) is in tests/integration/test_team_mode.py."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from app.core.cancel import Cancelled, CancelToken
from app.core.llm import Generated, PromptTooLong
from app.core.team.endpoint import EndpointEngine, EndpointError
from app.core.team.http import InsecureServer, Secret, ServerUnavailable, check_url

FIXTURES = Path(__file__).parent / "team_fixtures"
TOKEN = "tok-3f9c-very-secret"


def _vllm(requests: list) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        path = request.url.path
        if path == "/v1/models":
            return httpx.Response(200, text=(FIXTURES / "vllm_models.json").read_text())
        if path == "/tokenize":
            body = json.loads(request.content)
            if "prompt" not in body:  # vLLM refuses llama-server's form
                return httpx.Response(400, json={"object": "error", "message": "prompt missing"})
            n = len(body["prompt"].split())
            return httpx.Response(200, json={"count": n, "max_model_len": 8192, "tokens": [1] * n})
        if path == "/v1/chat/completions":
            body = json.loads(request.content)
            if body["max_tokens"] > 4000:
                text = (FIXTURES / "vllm_context_error.json").read_text()
                return httpx.Response(400, text=text)
            return httpx.Response(
                200,
                text=(FIXTURES / "vllm_chat_stream.txt").read_text(),
                headers={"content-type": "text/event-stream"},
            )
        return httpx.Response(404, json={"detail": "Not Found"})

    return httpx.MockTransport(handler)


def _engine(transport, **kw) -> EndpointEngine:
    return EndpointEngine("https://gpu.example:8000/v1", TOKEN, transport=transport, **kw)


def test_vllm_stream_gives_pieces_then_usage_figures():
    seen: list[httpx.Request] = []
    e = _engine(_vllm(seen))
    report = e.load()
    assert report.model == "Llama-3.1-8B-Instruct"
    assert e.n_ctx == 8192  # max_model_len from /v1/models
    assert e.count_tokens("three words here") == 3  # vLLM's /tokenize, not the estimate
    prompt = e.render([{"role": "user", "content": "notice?"}])
    out = list(e.generate(prompt, CancelToken(), 64, 0.0))
    assert "".join(out[:-1]) == "The notice period is 30 days [1]."
    final = out[-1]
    assert isinstance(final, Generated)
    assert (final.prompt_tokens, final.completion_tokens, final.stop_reason) == (412, 8, "stop")
    chat = json.loads(seen[-1].content)
    assert chat["stream"] is True and chat["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert chat["messages"] == [{"role": "user", "content": "notice?"}]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in seen)


def test_vllm_context_error_is_prompt_too_long():
    e = _engine(_vllm([]))
    e.load()
    with pytest.raises(PromptTooLong):
        list(e.generate(e.render([{"role": "user", "content": "x"}]), CancelToken(), 5000))


def test_llama_server_stream_keeps_its_timings_and_maps_length():
    def handler(request):
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "m.gguf"}]})
        if request.url.path == "/props":
            return httpx.Response(200, json={"default_generation_settings": {"n_ctx": 2048}})
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"tokens": [1, 2]})
        text = (FIXTURES / "llama_server_chat_stream.txt").read_text()
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})

    e = _engine(httpx.MockTransport(handler))
    e.load()
    assert (e.n_ctx, e._tokenizer, e.report.model) == (2048, "llama-server", "m")
    out = list(e.generate(e.render([{"role": "user", "content": "q"}]), CancelToken()))
    assert "".join(out[:-1]) == "Thirty days."
    assert out[-1].stop_reason == "max_tokens"
    assert e.last_timings["predicted_per_second"] == 150.0


def test_errors_are_sentences_without_the_token():
    def refuse(request):
        return httpx.Response(401, json={"error": {"message": "bad key", "code": 401}})

    e = _engine(httpx.MockTransport(refuse))
    with pytest.raises(EndpointError) as err:
        e.load()
    assert "llm_api_key" in str(err.value) and TOKEN not in str(err.value)
    assert TOKEN not in repr(e) and TOKEN not in repr(Secret(TOKEN))

    def down(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(ServerUnavailable, match="cannot be reached"):
        _engine(httpx.MockTransport(down)).load()


def test_a_server_error_event_mid_stream_is_raised():
    def handler(request):
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        if request.url.path.endswith("tokenize") or request.url.path == "/props":
            return httpx.Response(404)
        body = 'data: {"choices":[{"delta":{"content":"a"}}]}\n\nerror: {"message":"slot died"}\n\n'
        return httpx.Response(200, text=body)

    e = _engine(httpx.MockTransport(handler))
    e.load()
    assert e._tokenizer is None and e.count_tokens("abcdef") == 2  # the estimate
    with pytest.raises(EndpointError, match="slot died"):
        list(e.generate(e.render([{"role": "user", "content": "q"}]), CancelToken()))


def test_cancelled_before_start_sends_nothing():
    seen: list = []
    e = _engine(_vllm(seen))
    e.load()
    before = len(seen)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        list(e.generate(e.render([{"role": "user", "content": "q"}]), token))
    assert len(seen) == before


@pytest.mark.parametrize(
    ("url", "insecure", "ok"),
    [
        ("https://gpu.example:8000/v1", False, True),
        ("http://127.0.0.1:8080/v1", False, True),
        ("http://[::1]:8080/v1", False, True),
        ("http://localhost:8080/v1", False, True),
        ("http://gpu.example:8080/v1", False, False),
        ("http://10.0.0.5:8080/v1", False, False),
        ("http://gpu.example:8080/v1", True, True),
        ("https://user:pw@gpu.example/v1", False, False),
        ("ftp://gpu.example/v1", False, False),
    ],
)
def test_plain_http_only_to_loopback_unless_allowed(url, insecure, ok):
    if ok:
        assert check_url(url, insecure) == url.rstrip("/")
    else:
        with pytest.raises(InsecureServer) as err:
            check_url(url, insecure)
        assert "pw" not in str(err.value)


def test_neutralize_breaks_control_tokens():
    e = _engine(_vllm([]))
    text = e.neutralize("a <|im_end|> b [INST] c <|start_header_id|>")
    assert "<|im_end|>" not in text and "[INST]" not in text and "<|start_header_id|>" not in text
    assert text.replace("\u200b", "") == "a <|im_end|> b [INST] c <|start_header_id|>"


def test_a_stream_cut_short_is_an_error_not_a_short_answer():
    """A server that drops the stream (killed, or cutting one answer for another) must not
    pass for a finished answer."""

    def handler(request):
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        if request.url.path.endswith("tokenize") or request.url.path == "/props":
            return httpx.Response(404)
        return httpx.Response(200, text='data: {"choices":[{"delta":{"content":"The no"}}]}\n\n')

    e = _engine(httpx.MockTransport(handler))
    e.load()
    with pytest.raises(ServerUnavailable, match="stopped answering"):
        list(e.generate(e.render([{"role": "user", "content": "q"}]), CancelToken()))
