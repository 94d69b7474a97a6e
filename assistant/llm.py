"""A client for any OpenAI-compatible chat server (Ollama's /v1, llama.cpp's server, vLLM, OpenAI).

Two calls of one endpoint, `POST {base}/chat/completions`, whole or streamed, so this is a small httpx
client rather than the openai SDK behind llama-index's OpenAI LLM: that stack retries silently, counts
tokens with tiktoken (whose encoding files are fetched from the internet on first use) and hides the
stream. Nothing here runs unless the user chose `backend = "openai"` and named a server. The API key is
read from ATLAS_LLM_API_KEY at request time and never stored, printed or logged."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import httpx

from .settings import Settings


class LLMError(Exception):
    """The server could not give a usable completion; the deterministic answer is used instead."""


class ChatClient:
    def __init__(self, settings: Settings):
        self.url = settings.llm_base_url.rstrip("/") + "/chat/completions"
        self.model, self.format = settings.llm_model, settings.llm_format
        self.timeout, self.max_tokens, self.temperature = settings.llm_timeout, settings.llm_max_tokens, settings.llm_temperature

    def complete(self, messages: list[dict], schema: dict) -> str:
        """The whole completion's text."""
        return "".join(self.stream(messages, schema, stream=False))

    def stream(self, messages: list[dict], schema: dict, stream: bool = True) -> Iterator[str]:
        """The completion's text in pieces as the server sends them; one piece when not streaming.
        The timeout bounds the whole completion, not each read."""
        deadline = time.monotonic() + self.timeout
        body = {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "stream": stream, **self._response_format(schema)}
        key = os.environ.get("ATLAS_LLM_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        timeout = httpx.Timeout(self.timeout, connect=min(5.0, self.timeout))
        try:
            with httpx.Client(timeout=timeout, trust_env=False) as client, \
                    client.stream("POST", self.url, json=body, headers=headers) as response:
                if response.status_code != 200:
                    raise LLMError(f"the LLM server answered HTTP {response.status_code} ({self.url})")
                if not stream:
                    yield _message(json.loads(response.read()))
                    return
                for line in response.iter_lines():
                    if time.monotonic() > deadline:
                        raise LLMError(f"the LLM server did not finish within {self.timeout:g} s")
                    if piece := _delta(line):
                        yield piece
        except httpx.TimeoutException:
            raise LLMError(f"the LLM server did not answer within {self.timeout:g} s ({self.url})") from None
        except httpx.HTTPError as err:
            raise LLMError(f"cannot reach the LLM server at {self.url}: {type(err).__name__}") from None
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise LLMError(f"the LLM server's reply is not an OpenAI chat completion ({err})") from None

    def _response_format(self, schema: dict) -> dict:
        if self.format == "json_schema":
            return {"response_format": {"type": "json_schema",
                                        "json_schema": {"name": "answer", "schema": schema, "strict": True}}}
        if self.format == "json_object":  # llama.cpp's server also takes the schema here
            return {"response_format": {"type": "json_object", "schema": schema}}
        return {}


def _message(reply: dict) -> str:
    content = reply["choices"][0]["message"]["content"]
    if not isinstance(content, str):
        raise ValueError("no text in choices[0].message.content")
    return content


def _delta(line: str) -> str:
    """The text of one server-sent event line ('data: {...}'); '' for anything else."""
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if data == "[DONE]":
        return ""
    choices = json.loads(data).get("choices") or [{}]
    return choices[0].get("delta", {}).get("content") or ""
