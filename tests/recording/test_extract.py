"""extract_usage finds usage in every shape a chat call can return, and refuses bad counts loudly."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from datetime import timezone
from types import SimpleNamespace

import httpx
import pytest
import requests

import tokenlog
from tests.sdk import chat_response
from tokenlog import extract_usage


def test_a_chat_completion_dict_gives_its_counts_model_and_id() -> None:
    record = extract_usage(chat_response(12, 5, model="mistral-large-latest"))
    assert record is not None
    assert (record.model, record.prompt_tokens, record.completion_tokens, record.total_tokens) == (
        "mistral-large-latest",
        12,
        5,
        17,
    )
    assert record.request_id == "cmpl-1"
    assert record.timestamp.tzinfo is timezone.utc


def test_a_mistralai_chat_response_object_is_read() -> None:
    from mistralai.client.models import ChatCompletionResponse

    response = ChatCompletionResponse.model_validate(chat_response(7, 3, model="mistral-small-2409"))
    record = extract_usage(response)
    assert record is not None
    assert (record.model, record.prompt_tokens, record.completion_tokens, record.total_tokens) == (
        "mistral-small-2409",
        7,
        3,
        10,
    )


def test_a_mistralai_embedding_response_has_zero_completion_tokens() -> None:
    from mistralai.client.models import EmbeddingResponse

    response = EmbeddingResponse.model_validate(
        {
            "id": "emb-1",
            "object": "list",
            "model": "mistral-embed",
            "data": [{"object": "embedding", "embedding": [0.1, 0.2], "index": 0}],
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        }
    )
    record = extract_usage(response)
    assert record is not None
    assert (record.model, record.prompt_tokens, record.completion_tokens, record.total_tokens) == (
        "mistral-embed",
        8,
        0,
        8,
    )


def test_an_openai_chat_completion_is_read() -> None:
    from openai.types.chat import ChatCompletion

    record = extract_usage(ChatCompletion.model_validate(chat_response(4, 6, model="gpt-4o-mini")))
    assert record is not None
    assert (record.model, record.total_tokens) == ("gpt-4o-mini", 10)


def test_an_openai_embedding_usage_without_completion_tokens_counts_zero() -> None:
    from openai.types import CreateEmbeddingResponse

    response = CreateEmbeddingResponse.model_validate(
        {
            "object": "list",
            "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "embedding": [0.5], "index": 0}],
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
        }
    )
    record = extract_usage(response)
    assert record is not None
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (5, 0, 5)


def test_responses_api_input_and_output_tokens_are_read() -> None:
    response = SimpleNamespace(
        id="resp_1", model="gpt-4.1", usage=SimpleNamespace(input_tokens=20, output_tokens=7, total_tokens=27)
    )
    record = extract_usage(response)
    assert record is not None
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (20, 7, 27)


def test_a_missing_total_is_prompt_plus_completion() -> None:
    record = extract_usage({"usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    assert record is not None
    assert record.total_tokens == 7


def test_the_model_argument_is_used_when_the_response_names_none() -> None:
    usage = {"usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    assert extract_usage(dict(usage), model="codestral-latest").model == "codestral-latest"  # type: ignore[union-attr]
    assert extract_usage(dict(usage)).model == "unknown"  # type: ignore[union-attr]
    assert extract_usage(chat_response(model="from-response"), model="ignored").model == "from-response"  # type: ignore[union-attr]


def test_a_mistral_stream_event_is_read_through_its_data() -> None:
    from mistralai.client.models import CompletionEvent

    last = CompletionEvent.model_validate(
        {
            "data": {
                "id": "c1",
                "model": "mistral-small-latest",
                "choices": [{"index": 0, "delta": {"content": "!"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
            }
        }
    )
    first = CompletionEvent.model_validate(
        {
            "data": {
                "id": "c1",
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": "h"}, "finish_reason": None}],
            }
        }
    )
    assert extract_usage(first) is None
    record = extract_usage(last)
    assert record is not None
    assert (record.model, record.total_tokens) == ("mistral-small-latest", 11)


def test_a_conversation_response_takes_its_model_from_the_outputs() -> None:
    response = SimpleNamespace(
        conversation_id="conv_1",
        outputs=[SimpleNamespace(model="mistral-medium-latest", content="hi")],
        usage=SimpleNamespace(prompt_tokens=5, completion_tokens=1, total_tokens=6, connector_tokens=0),
    )
    record = extract_usage(response)
    assert record is not None
    assert record.model == "mistral-medium-latest"


def test_a_tuple_gives_the_usage_of_its_first_element_that_has_some() -> None:
    record = extract_usage(("the answer", chat_response(2, 3), chat_response(100, 100)))
    assert record is not None
    assert record.total_tokens == 5


def test_a_read_httpx_response_is_parsed_and_a_streamed_one_is_left_unread() -> None:
    read = httpx.Response(200, json=chat_response(6, 1))
    assert extract_usage(read).total_tokens == 7  # type: ignore[union-attr]

    def body() -> object:
        yield json.dumps(chat_response()).encode()

    streamed = httpx.Response(200, content=body())  # type: ignore[arg-type]
    assert extract_usage(streamed) is None
    assert not streamed.is_stream_consumed


def test_a_requests_response_with_a_json_body_is_parsed() -> None:
    response = requests.Response()
    response._content = json.dumps(chat_response(3, 3)).encode()
    response.status_code = 200
    assert extract_usage(response).total_tokens == 6  # type: ignore[union-attr]


def test_a_requests_response_whose_body_was_not_read_is_left_alone() -> None:
    response = requests.Response()  # _content is False until someone reads the body
    assert extract_usage(response) is None
    assert response._content is False


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("prompt_tokens", None, "usage has no prompt_tokens"),
        ("prompt_tokens", "3", "usage.prompt_tokens is '3', expected a non-negative integer"),
        ("completion_tokens", 1.5, "usage.completion_tokens is 1.5, expected a non-negative integer"),
        ("completion_tokens", True, "usage.completion_tokens is True, expected a non-negative integer"),
        ("total_tokens", -1, "usage.total_tokens is -1, expected a non-negative integer"),
        ("total_tokens", 2**63, "usage.total_tokens is 9223372036854775808, expected a count below 2**63"),
        ("prompt_tokens", [1], "usage.prompt_tokens is [1], expected a non-negative integer"),
    ],
)
def test_one_unusable_count_is_worked_out_from_the_other_two_and_the_warning_names_it(
    field: str, value: object, named: str
) -> None:
    usage: dict[str, object] = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, field: value}
    with pytest.warns(tokenlog.TokenlogWarning, match=re.escape(named) + r".*so the row has " + field):
        record = extract_usage({"model": "m", "usage": usage})
    assert record is not None
    assert (record.model, record.prompt_tokens, record.completion_tokens, record.total_tokens) == ("m", 3, 4, 7)


def test_two_unusable_counts_give_no_record_and_one_warning_naming_both() -> None:
    with pytest.warns(tokenlog.TokenlogWarning) as caught:
        assert extract_usage({"usage": {"prompt_tokens": "3", "completion_tokens": 4, "total_tokens": -1}}) is None
    (warning,) = caught
    assert "usage.prompt_tokens is '3'" in str(warning.message)
    assert "usage.total_tokens is -1" in str(warning.message)
    assert str(warning.message).endswith("no row written for this response")


def test_counts_that_contradict_each_other_give_no_record() -> None:
    with pytest.warns(tokenlog.TokenlogWarning, match=r"total_tokens - completion_tokens is -2"):
        assert extract_usage({"usage": {"prompt_tokens": "x", "completion_tokens": 5, "total_tokens": 3}}) is None


def test_usage_without_any_prompt_count_is_refused_with_a_warning() -> None:
    with pytest.warns(tokenlog.TokenlogWarning, match="neither prompt_tokens nor input_tokens"):
        assert extract_usage({"usage": {"completion_tokens": 3}}) is None


def test_a_total_that_disagrees_is_kept_as_reported_with_a_warning() -> None:
    with pytest.warns(tokenlog.TokenlogWarning, match="total_tokens is 50"):
        record = extract_usage({"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 50}})
    assert record is not None
    assert record.total_tokens == 50


@pytest.mark.parametrize("obj", [None, "text", 42, b"bytes", [], {}, {"usage": None}, SimpleNamespace(usage=None)])
def test_objects_without_usage_give_none_silently(obj: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert extract_usage(obj) is None


def test_an_object_whose_attributes_raise_gives_none_and_a_warning() -> None:
    class Hostile:
        @property
        def usage(self) -> object:
            raise RuntimeError("boom")

    with pytest.warns(tokenlog.TokenlogWarning, match="could not read usage from a .*Hostile.*boom"):
        assert extract_usage(Hostile()) is None


def test_a_dataclass_usage_is_read_by_attribute() -> None:
    @dataclasses.dataclass
    class Usage:
        prompt_tokens: int
        completion_tokens: int

    @dataclasses.dataclass
    class Response:
        model: str
        usage: Usage

    record = extract_usage(Response("open-mistral-nemo", Usage(2, 2)))
    assert record is not None
    assert (record.model, record.total_tokens) == ("open-mistral-nemo", 4)
