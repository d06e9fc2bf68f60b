"""The ``openai`` backend: a chat-completions client for an OpenAI-compatible server (vLLM).

Each request becomes one ``POST {base_url}/chat/completions`` with the audio as a base64
WAV ``input_audio`` content part followed by the prompt text, ``temperature: 0`` (greedy),
``max_tokens`` and a fixed ``seed``. Requests of a batch run concurrently in a thread pool
of ``concurrency`` workers (vLLM batches concurrent requests itself, and with prefix caching
the shared audio prefix of one utterance's conditions is prefilled once).

Transient failures are retried with exponential backoff (``backoff_s * 2**attempt``, at most
``max_backoff_s``, or the server's ``Retry-After``): connection errors, timeouts, 5xx, 429 and
a 200 without an answer. A request the server rejects as malformed (400, 413, 422: e.g. audio
longer than the model takes), and one that still fails after every retry, is recorded as an
error answer (``None``: ``parse_status == "error"`` downstream, asked again when the job runs again, e.g. `--forcerun query_token_conditions`)
with a warning, so that one request the server cannot answer (a file that crashes its
decoder, one longer than ``timeout_s``) does not stop the job on every run. The job stops
with :class:`ServerUnavailableError`, naming ``base_url``, when the server is unreachable
(connection refused), when :data:`DOWN_AFTER` requests in a row fail (the server, not the
requests, is at fault), or on any other 4xx (bad key, unknown model); the answers its batch
got before that are kept (the error's ``answered``).
"""

from __future__ import annotations

import base64
import io
import logging
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from cueprobe.backends.base import BackendInfo
from cueprobe.backends.base import Request
from cueprobe.backends.base import version_mark

__all__ = ["OpenAIBackend", "ServerUnavailableError", "encode_wav"]

log = logging.getLogger(__name__)

#: statuses that mean "try again later"
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: statuses that mean "this one request is not acceptable": recorded as an error answer
_REQUEST_ERROR_STATUS = frozenset({400, 413, 422})


#: requests failing one after another, with no answer between them, that stop the job
DOWN_AFTER = 5
#: bump it when a change here changes what a server is asked (the payload, how the audio
#: is sent): from 2 on it is part of the header's ``decoding``, so the journal's answers
#: of the old code are not reused (:func:`cueprobe.backends.base.version_mark`)
BACKEND_VERSION = 1


class ServerUnavailableError(ConnectionError):
    """The server could not be reached, or kept failing, after every retry.

    ``answered`` maps the positions in the batch of the requests answered before the
    backend gave up to their answers (the caller keeps them).
    """

    def __init__(self, message: str, answered: dict[int, str | None] | None = None) -> None:
        super().__init__(message)
        self.answered = answered or {}


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
        System message; None sends none, so the server's chat template adds its default
        system turn, as the ``transformers`` backend's does; ``""`` sends an empty one
        (config ``prompts.system`` refuses it: :class:`cueprobe.prompts.PromptTemplates`).
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
        self._failing = 0  # requests failed in a row
        self.info = BackendInfo(
            model_id=model_id,
            revision=revision,
            decoding=f"greedy (temperature=0); max_tokens={max_new_tokens}; seed={seed}"
            + version_mark(BACKEND_VERSION),
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
                seconds = float(response.headers["retry-after"])
            except ValueError:  # an HTTP date: back off as without it
                seconds = math.nan
            if math.isfinite(seconds):
                return min(max(seconds, 0.0), self.max_backoff_s)
        return min(self.backoff_s * 2**attempt, self.max_backoff_s)

    def _outcome(self, request: Request, response: httpx.Response) -> tuple[bool, str | None]:
        """``(True, answer)``: the call is done (``None``: rejected); ``(False, error)``:
        worth a retry. Raises on a configuration error (other 4xx)."""
        if response.status_code == 200:
            answer = _answer_text(response)
            if answer is None:
                return (
                    False,
                    f"HTTP 200 without choices[0].message.content: {response.text[:300]!r}",
                )
            return True, answer
        detail = response.text[:300]
        if response.status_code in _REQUEST_ERROR_STATUS:
            log.warning(
                "%s rejected request %s (HTTP %d): %s",
                self.base_url,
                request.utt_id,
                response.status_code,
                detail,
            )
            return True, None
        if response.status_code not in _RETRY_STATUS:
            raise ServerUnavailableError(
                f"{self.base_url}/chat/completions answered HTTP {response.status_code} "
                f"for model {self.model_id!r}: {detail}"
            )
        return False, f"HTTP {response.status_code}: {detail}"

    def _call(self, request: Request) -> str | None:
        try:
            body = self.payload(request)
        except (OSError, RuntimeError) as err:  # soundfile's decoder errors are RuntimeErrors
            log.warning(
                "%s (%s) cannot be read or converted to WAV (%s: %s): an error answer, "
                "asked again on a forced re-run",
                request.audio_path, request.utt_id, type(err).__name__, err,
            )  # fmt: skip
            return None
        for attempt in range(self.max_retries + 1):
            response = None
            try:
                response = self._client.post("/chat/completions", json=body)
            except httpx.TransportError as err:  # connection refused, reset, timeout
                last = f"{type(err).__name__}: {err}"
                unreachable = isinstance(err, httpx.ConnectError)
            else:
                done, answer = self._outcome(request, response)
                if done:  # the server answered: it is up
                    with self._lock:
                        self._failing = 0
                    return answer
                last, unreachable = answer, False
            if attempt < self.max_retries:
                delay = self._delay(attempt, response)
                log.info("retrying %s in %.2f s (%s)", request.utt_id, delay, last)
                with self._lock:
                    self.n_retries += 1
                time.sleep(delay)
        with self._lock:
            self._failing += 1
            failing = self._failing
        if unreachable or failing >= DOWN_AFTER:
            raise ServerUnavailableError(
                f"the OpenAI-compatible server at {self.base_url} failed "
                f"{self.max_retries + 1} attempt(s) for request {request.utt_id!r}"
                + (f" ({failing} requests in a row have failed)" if failing > 1 else "")
                + f"; last error: {last}. Is the server running and base_url right?"
            )
        log.warning(
            "%s failed request %s %d time(s) (last error: %s): an error answer, asked again "
            "on a forced re-run of the job",
            self.base_url,
            request.utt_id,
            self.max_retries + 1,
            last,
        )
        return None

    def generate(self, requests: Sequence[Request]) -> list[str | None]:
        """One answer per request, in order; None where the server rejected the request
        or failed it after every retry.

        Raises
        ------
        ServerUnavailableError
            With the answers got before it in ``answered``.
        """
        answered: dict[int, str | None] = {}
        if len(requests) <= 1 or self.concurrency == 1:
            for i, r in enumerate(requests):
                try:
                    answered[i] = self._call(r)
                except ServerUnavailableError as err:
                    err.answered = answered
                    raise
            return [answered[i] for i in range(len(requests))]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            futures = [pool.submit(self._call, r) for r in requests]
        first = None
        for i, f in enumerate(futures):
            if f.exception() is None:
                answered[i] = f.result()
            elif first is None:
                first = f.exception()
        if first is not None:
            if isinstance(first, ServerUnavailableError):
                first.answered = answered
            raise first
        return [answered[i] for i in range(len(requests))]


def _answer_text(response: httpx.Response) -> str | None:
    """The answer of a 200, or None when it has none (a server that is not compatible,
    or ``content: null`` alone: worth a retry).

    ``content: null`` beside a ``reasoning_content`` (vLLM's reasoning parser) is a model
    cut off while it reasoned (``max_new_tokens``), and beside a ``refusal`` a model that
    declined: that is its answer, ``""`` (unparsed), the same on every try; a warning says
    so.
    """
    try:
        message = response.json()["choices"][0]["message"]
        content = message["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if content is None:
        refusal = message.get("refusal")
        if isinstance(refusal, str):  # the model declined: its answer, unparsed
            log.warning("a refusal instead of an answer: unparsed; %r", refusal[:120])
            return ""
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if not isinstance(reasoning, str):
            return None
        log.warning(
            "an answer with reasoning but no content (cut off at max_new_tokens?): unparsed; %r",
            reasoning[-120:],
        )
        return ""
    if not isinstance(content, str):
        return None
    return content.strip()
