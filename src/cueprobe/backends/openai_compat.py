"""The ``openai`` backend: a chat-completions client for an OpenAI-compatible server (vLLM).

Each request becomes one ``POST {base_url}/chat/completions`` with the audio as a base64
WAV ``input_audio`` content part followed by the prompt text, ``temperature: 0`` (greedy),
``max_tokens`` and a fixed ``seed``. Requests of a batch run concurrently in a thread pool
of ``concurrency`` workers (vLLM batches concurrent requests itself, and with prefix caching
the shared audio prefix of one utterance's conditions is prefilled once).

Transient failures are retried with exponential backoff (``backoff_s * 2**attempt``, at most
``max_backoff_s``, or the server's ``Retry-After``): connection errors, timeouts, 5xx and 429.
A request the server rejects as malformed (400, 413, 422: e.g. audio longer than the model
takes) is recorded as an error answer (``None``: ``parse_status == "error"`` downstream)
with a warning; any other 4xx (bad key, unknown model) stops the run. When the server stays
unreachable, :class:`ServerUnavailableError` names ``base_url``.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from cueprobe.backends.base import BackendInfo
from cueprobe.backends.base import Request

__all__ = ["OpenAIBackend", "ServerUnavailableError", "encode_wav"]

log = logging.getLogger(__name__)

#: statuses that mean "try again later"
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: statuses that mean "this one request is not acceptable": recorded as an error answer
_REQUEST_ERROR_STATUS = frozenset({400, 413, 422})


class ServerUnavailableError(ConnectionError):
    """The server could not be reached, or kept failing, after every retry."""


def encode_wav(path: str) -> str:
    """Base64 of the file as WAV: WAV files as they are, other formats converted (16-bit)."""
    p = Path(path)
    if p.suffix.lower() == ".wav":
        data = p.read_bytes()
    else:
        import soundfile

        signal, rate = soundfile.read(path, dtype="float32")
        buf = io.BytesIO()
        soundfile.write(buf, signal, rate, format="WAV", subtype="PCM_16")
        data = buf.getvalue()
    return base64.b64encode(data).decode("ascii")


class OpenAIBackend:
    """Greedy chat-completions calls with bounded concurrency and retries.

    Parameters
    ----------
    base_url : str
        Server root including the API prefix, e.g. ``http://localhost:8000/v1``.
    model_id : str
        Served model name (the ``model`` field of each call).
    api_key : str or None
        Bearer token; None sends no ``Authorization`` header (the CLI reads it from the
        environment variable named in the config).
    revision : str, default: "main"
        Recorded in the predictions table (the server does not report one).
    max_new_tokens : int, default: 16
        ``max_tokens`` of each call.
    batch_size : int, default: 8
        Requests per runner batch (one write to disk per batch).
    concurrency : int, default: 8
        Calls in flight at once.
    max_retries : int, default: 5
        Retries per call after the first attempt.
    timeout_s : float, default: 120
        Per-call timeout.
    system_prompt : str or None
        System message; None sends none.
    seed : int, default: 0
        ``seed`` field of each call (servers that sample honour it; greedy needs none).
    backoff_s, max_backoff_s : float
        First retry delay and its cap.
    transport : httpx.BaseTransport or None
        For tests; None uses the network.
    """

    def __init__(
        self,
        base_url: str,
        model_id: str,
        *,
        api_key: str | None,
        revision: str = "main",
        max_new_tokens: int = 16,
        batch_size: int = 8,
        concurrency: int = 8,
        max_retries: int = 5,
        timeout_s: float = 120.0,
        system_prompt: str | None = None,
        seed: int = 0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        for name, value, low in (
            ("max_new_tokens", max_new_tokens, 1),
            ("batch_size", batch_size, 1),
            ("concurrency", concurrency, 1),
            ("max_retries", max_retries, 0),
        ):
            if value < low:
                raise ValueError(f"`{name}` must be >= {low}, got {value}.")
        self.base_url = base_url.rstrip("/")
        self.model_id = model_id
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.system_prompt = system_prompt
        self.seed = seed
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout_s,
            transport=transport,
            limits=httpx.Limits(max_connections=concurrency),
        )
        self._lock = threading.Lock()
        self.n_retries = 0
        self.info = BackendInfo(
            model_id=model_id,
            revision=revision,
            decoding=f"greedy (temperature=0); max_tokens={max_new_tokens}; seed={seed}",
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def payload(self, request: Request) -> dict[str, Any]:
        """The chat-completions body of one request."""
        messages: list[dict[str, Any]] = []
        if self.system_prompt is not None:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_audio",
                        "input_audio": {"data": encode_wav(request.audio_path), "format": "wav"},
                    },
                    {"type": "text", "text": request.prompt},
                ],
            }
        )
        return {
            "model": self.model_id,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": self.max_new_tokens,
            "seed": self.seed,
        }

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and "retry-after" in response.headers:
            try:
                return min(float(response.headers["retry-after"]), self.max_backoff_s)
            except ValueError:
                pass
        return min(self.backoff_s * 2**attempt, self.max_backoff_s)

    def _call(self, request: Request) -> str | None:
        body = self.payload(request)
        last = ""
        for attempt in range(self.max_retries + 1):
            response = None
            try:
                response = self._client.post("/chat/completions", json=body)
            except httpx.TransportError as err:  # connection refused, reset, timeout
                last = f"{type(err).__name__}: {err}"
            else:
                if response.status_code == 200:
                    return _answer_text(response, self.base_url)
                detail = response.text[:300]
                if response.status_code in _REQUEST_ERROR_STATUS:
                    log.warning(
                        "%s rejected request %s (HTTP %d): %s",
                        self.base_url,
                        request.utt_id,
                        response.status_code,
                        detail,
                    )
                    return None
                if response.status_code not in _RETRY_STATUS:
                    raise ServerUnavailableError(
                        f"{self.base_url}/chat/completions answered HTTP {response.status_code} "
                        f"for model {self.model_id!r}: {detail}"
                    )
                last = f"HTTP {response.status_code}: {detail}"
            if attempt < self.max_retries:
                delay = self._delay(attempt, response)
                log.info("retrying %s in %.2f s (%s)", request.utt_id, delay, last)
                with self._lock:
                    self.n_retries += 1
                time.sleep(delay)
        raise ServerUnavailableError(
            f"the OpenAI-compatible server at {self.base_url} failed {self.max_retries + 1} "
            f"attempt(s) for request {request.utt_id!r}; last error: {last}. "
            "Is the server running and base_url right?"
        )

    def generate(self, requests: Sequence[Request]) -> list[str | None]:
        """One answer per request, in order; None where the server rejected the request."""
        if len(requests) <= 1 or self.concurrency == 1:
            return [self._call(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._call, requests))


def _answer_text(response: httpx.Response, base_url: str) -> str:
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise ServerUnavailableError(
            f"{base_url}/chat/completions returned no choices[0].message.content: "
            f"{response.text[:300]!r}"
        ) from err
    return (content or "").strip()
