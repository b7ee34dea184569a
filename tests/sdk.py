"""The one shared SDK-fixture module: the mistralai SDK under test, whichever major version is installed (1.x or
2.x/3.x), and the JSON a chat endpoint returns (what requests/httpx users get). The clients, pointed at the local
server, are the ``mistral`` and ``oai`` fixtures of tests/conftest.py.

CI runs the SDK tests once with the newest mistralai and once with the newest 1.x, and the 0.x test with
mistralai 0.4.2 (see ``.ci/run``).
"""

from __future__ import annotations

from importlib.metadata import version

MISTRAL_VERSION = version("mistralai")
MISTRAL_MAJOR = int(MISTRAL_VERSION.split(".")[0])

if MISTRAL_MAJOR >= 2:
    from mistralai.client import Mistral
    from mistralai.client.errors import ResponseValidationError, SDKError
    from mistralai.client.utils import BackoffStrategy, RetryConfig
elif MISTRAL_MAJOR == 1:  # pragma: no cover - runs in the mistralai 1.x CI step
    from mistralai import Mistral  # type: ignore[attr-defined,no-redef,unused-ignore]
    from mistralai.models import ResponseValidationError, SDKError  # type: ignore[no-redef,unused-ignore]
    from mistralai.utils import BackoffStrategy, RetryConfig  # type: ignore[no-redef,unused-ignore]

else:  # pragma: no cover - mistralai 0.x (MistralClient): only tests/recording/test_mistral0.py runs there
    Mistral = ResponseValidationError = SDKError = BackoffStrategy = RetryConfig = None  # type: ignore[assignment,misc]

__all__ = [
    "MISTRAL_MAJOR",
    "MISTRAL_VERSION",
    "BackoffStrategy",
    "Mistral",
    "ResponseValidationError",
    "RetryConfig",
    "SDKError",
    "chat_response",
]


def chat_response(prompt: int = 10, completion: int = 5, *, model: str = "mistral-small-latest") -> dict[str, object]:
    """The JSON a /v1/chat/completions endpoint returns, as requests/httpx give it."""
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }
