"""The ``openai`` backend against a loopback chat-completions server started by the test."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest

from cueprobe.backends.base import Backend
from cueprobe.backends.base import Request
from cueprobe.backends.openai_compat import DOWN_AFTER
from cueprobe.backends.openai_compat import OpenAIBackend
from cueprobe.backends.openai_compat import ServerUnavailableError
from cueprobe.backends.openai_compat import encode_wav


class ChatServer:
    """A tiny chat-completions server on 127.0.0.1 (port 0), in a thread.

    ``script`` is a list of (status, body-or-None, headers) answered in turn for the first
    calls; after it runs out every call succeeds with ``answer: <text part>``. ``delay_s``
    holds each call that long, to see how many run at once.
    """

    def __init__(self, script=(), delay_s: float = 0.0) -> None:
        self.script = list(script)
        self.delay_s = delay_s
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    server.headers.append(dict(self.headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    step = server.script.pop(0) if server.script else None
                try:
                    time.sleep(server.delay_s)
                    if self.path != "/v1/chat/completions":
                        step = (404, {"error": "not found"}, {})
                    if step is None:
                        text = body["messages"][-1]["content"][1]["text"]
                        step = (
                            200,
                            {"choices": [{"message": {"content": f" answer: {text} "}}]},
                            {},
                        )
                    status, payload, headers = step
                    data = json.dumps(payload).encode() if payload is not None else b"not json"
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def requests_(tmp_path, write_wav) -> list[Request]:
    return [
        Request(
            f"u{i}", str(write_wav(tmp_path / f"u{i}.wav", freq=100.0 + 50 * i)), f"q{i}", f"u{i}"
        )
        for i in range(8)
    ]


def _backend(url: str, **kw) -> OpenAIBackend:
    kw = {"api_key": "sk-test", "backoff_s": 0.01, "max_retries": 3, **kw}
    return OpenAIBackend(url, "tiny-alm", **kw)


def test_payload_and_answers_in_order(requests_):
    with ChatServer(delay_s=0.05) as server:
        backend = _backend(server.url, concurrency=3, max_new_tokens=7, system_prompt="Be brief.")
        answers = backend.generate(requests_)
        backend.close()
    assert isinstance(backend, Backend)
    assert answers == [f"answer: q{i}" for i in range(8)]
    body = next(b for b in server.bodies if b["messages"][-1]["content"][1]["text"] == "q2")
    assert body["model"] == "tiny-alm"
    assert body["temperature"] == 0.0 and body["max_tokens"] == 7 and body["seed"] == 0
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    audio, text = body["messages"][1]["content"]
    assert audio["type"] == "input_audio" and audio["input_audio"]["format"] == "wav"
    with open(requests_[2].audio_path, "rb") as f:
        assert base64.b64decode(audio["input_audio"]["data"]) == f.read()
    assert text == {"type": "text", "text": "q2"}
    assert all(h["Authorization"] == "Bearer sk-test" for h in server.headers)
    # bounded concurrency: calls overlap, never more than 3 at once
    assert 1 < server.max_in_flight <= 3


def test_no_key_sends_no_authorization(requests_):
    with ChatServer() as server:
        backend = _backend(server.url, api_key=None, concurrency=1)
        backend.generate(requests_[:1])
    assert "Authorization" not in server.headers[0]


def test_server_fails_then_recovers(requests_):
    script = [
        (503, {"error": "loading"}, {}),
        (500, {"error": "oops"}, {}),
        (429, {}, {"Retry-After": "0"}),
    ]
    with ChatServer(script=script) as server:
        backend = _backend(server.url, concurrency=1, max_retries=3)
        answers = backend.generate(requests_[:2])
    assert answers == ["answer: q0", "answer: q1"]
    assert backend.n_retries == 3
    assert len(server.bodies) == 5


def test_a_request_that_keeps_failing_is_an_error_answer(requests_, caplog):
    """One request the server fails after every retry (a file that crashes its decoder)
    stopped the job, and so every re-run of it: now an error answer, asked next run."""
    with ChatServer(script=[(503, {}, {})] * 3) as server:
        backend = _backend(server.url, concurrency=1, max_retries=2)
        with caplog.at_level(logging.WARNING):
            answers = backend.generate(requests_[:3])
    assert answers == [None, "answer: q1", "answer: q2"]
    assert len(server.bodies) == 5
    assert "failed request u0 3 time(s) (last error: HTTP 503" in caplog.text


@pytest.mark.parametrize("concurrency", [1, 4])
def test_requests_failing_in_a_row_stop_the_job_keeping_the_batch_answers(requests_, concurrency):
    """A server that fails everything from some point on is down: the job stops, and
    the answers its batch got before are handed back (they were lost)."""
    script = [None, None] + [(503, {}, {})] * 50  # two answers, then only failures
    with ChatServer(script=script) as server:
        backend = _backend(server.url, concurrency=concurrency, max_retries=0)
        with pytest.raises(ServerUnavailableError, match="requests in a row have failed") as err:
            backend.generate(requests_ * 2)  # concurrent: failures may finish between answers
    answered = err.value.answered
    assert sum(a is not None for a in answered.values()) == 2
    assert all(a in (None, f"answer: q{i % 8}") for i, a in answered.items())
    if concurrency == 1:
        assert answered == {0: "answer: q0", 1: "answer: q1", 2: None, 3: None, 4: None, 5: None}
        assert len(server.bodies) == 2 + DOWN_AFTER


def test_server_down_names_base_url(requests_):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = _backend(f"http://127.0.0.1:{port}/v1", max_retries=1)
    with pytest.raises(
        ServerUnavailableError, match=f"server at http://127.0.0.1:{port}/v1 failed 2"
    ) as err:
        backend.generate(requests_[:2])
    assert "ConnectError" in str(err.value)
    assert "Is the server running" in str(err.value)


def test_timeout_is_retried_then_an_error_answer(requests_, caplog):
    with ChatServer(delay_s=0.5) as server:
        backend = _backend(server.url, timeout_s=0.1, max_retries=1, concurrency=1)
        with caplog.at_level(logging.WARNING):
            assert backend.generate(requests_[:1]) == [None]
    assert len(server.bodies) == 2
    assert "failed request u0 2 time(s) (last error: ReadTimeout" in caplog.text


def test_a_negative_or_bad_retry_after_backs_off_as_usual(requests_):
    script = [(503, {}, {"Retry-After": "-1"}), (503, {}, {"Retry-After": "nan"})]
    with ChatServer(script=script) as server:
        backend = _backend(server.url, concurrency=1, max_retries=2)
        assert backend.generate(requests_[:1]) == ["answer: q0"]
    assert backend.n_retries == 2


@pytest.mark.parametrize("status", [400, 413, 422])
def test_rejected_request_is_an_error_answer(requests_, caplog, status):
    """413 (one clip too large for the server) too: it had stopped the whole job."""
    with ChatServer(script=[(status, {"error": "audio too long"}, {})]) as server:
        backend = _backend(server.url, concurrency=1)
        with caplog.at_level(logging.WARNING):
            answers = backend.generate(requests_[:2])
    assert answers == [None, "answer: q1"]
    assert f"rejected request u0 (HTTP {status})" in caplog.text
    assert len(server.bodies) == 2  # not retried


def test_only_failures_in_a_row_stop_the_job(requests_):
    """Failures between answers are not a server that is down: a mutant that never reset
    the count stopped a long job after any DOWN_AFTER failures."""
    script = [(503, {}, {}), None] * 8  # fail, answer, ...: 8 failures, DOWN_AFTER apart
    assert DOWN_AFTER < 8
    with ChatServer(script=script) as server:
        backend = _backend(server.url, concurrency=1, max_retries=0)
        answers = backend.generate(requests_ * 2)
    assert answers[::2] == [None] * 8 and all(a is not None for a in answers[1::2])


def test_configuration_errors_stop_at_once(requests_):
    with ChatServer(script=[(401, {"error": "bad key"}, {})]) as server:
        backend = _backend(server.url, concurrency=1)
        with pytest.raises(ServerUnavailableError, match="answered HTTP 401 for model 'tiny-alm'"):
            backend.generate(requests_[:1])
    assert len(server.bodies) == 1


def test_malformed_answer_is_retried_then_an_error_answer(requests_, caplog):
    with ChatServer(script=[(200, None, {})] * 2) as server:
        backend = _backend(server.url, max_retries=1, concurrency=1)
        with caplog.at_level(logging.WARNING):
            assert backend.generate(requests_[:2]) == [None, "answer: q1"]
    assert "HTTP 200 without choices[0].message.content: 'not json'" in caplog.text


def test_invalid_options():
    with pytest.raises(ValueError, match="`concurrency` must be >= 1"):
        OpenAIBackend("http://x/v1", "m", api_key=None, concurrency=0)


def test_encode_wav_converts_other_formats(tmp_path, write_wav):
    import soundfile

    wav = write_wav(tmp_path / "a.wav")
    signal, rate = soundfile.read(wav)
    soundfile.write(tmp_path / "a.flac", signal, rate)
    data = base64.b64decode(encode_wav(str(tmp_path / "a.flac")))
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def test_null_content_is_retried_unless_the_model_was_cut_off_while_reasoning(requests_, caplog):
    """``content: null`` was stored as the answer ``""`` and never asked again, though the
    docstring promised a retry; beside vLLM's ``reasoning_content`` it is the model cut
    off at max_new_tokens: an unparsed answer, the same on every try."""
    null = {"choices": [{"message": {"content": None}}]}
    cut = {"choices": [{"message": {"content": None, "reasoning_content": "Hmm, the pitch"}}]}
    refused = {"choices": [{"message": {"content": None, "refusal": "I cannot help."}}]}
    script = [(200, null, {}), None, (200, cut, {}), (200, refused, {})]
    with ChatServer(script=script) as server:
        backend = _backend(server.url, max_retries=1, concurrency=1)
        with caplog.at_level(logging.WARNING):
            assert backend.generate(requests_[:3]) == ["answer: q0", "", ""]
    assert len(server.bodies) == 4  # the null one was asked twice
    assert "reasoning but no content" in caplog.text and "a refusal" in caplog.text


def test_a_file_that_cannot_be_converted_is_an_error_answer_naming_it(
    requests_, tmp_path, write_wav, caplog
):
    """A FLAC whose header reads but whose data does not decode crashed every run of the
    job with soundfile's bare "unknown error in flac decoder", naming no file."""
    import dataclasses

    import soundfile

    signal, rate = soundfile.read(write_wav(tmp_path / "b.wav"))
    soundfile.write(tmp_path / "b.flac", signal, rate)
    data = (tmp_path / "b.flac").read_bytes()
    (tmp_path / "b.flac").write_bytes(data[: len(data) // 2])  # truncated
    bad = dataclasses.replace(requests_[1], audio_path=str(tmp_path / "b.flac"))
    with ChatServer() as server:
        backend = _backend(server.url, concurrency=2)
        with caplog.at_level(logging.WARNING):
            got = backend.generate([requests_[0], bad, requests_[2]])
    assert got == ["answer: q0", None, "answer: q2"]
    assert f"{tmp_path / 'b.flac'} (u1) cannot be read" in caplog.text
    assert len(server.bodies) == 2
