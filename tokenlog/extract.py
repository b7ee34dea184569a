"""Find token usage in whatever a call returned.

Reads, in this order: a mapping's ``"usage"`` key (JSON from ``requests``/``httpx``), an
already-read ``requests``/``httpx`` response with a JSON body, the first element of a tuple or
list that carries usage, an object's ``usage`` attribute (mistralai, openai, pydantic models,
dataclasses), and the ``data`` of a stream event (mistralai ``CompletionEvent``). Nothing here
imports an SDK: everything is read by name.
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import NamedTuple

from .errors import article, warn
from .record import MAX_COUNT, UsageRecord, are_counts

__all__ = ["Reading", "extract_usage", "read_usage", "response_id", "stream_chunk_usage"]

_MISSING = object()
_NO_USAGE_TYPES = (str, bytes, bytearray, int, float, bool, type(None))
_HTTP_MODULES = frozenset({"requests", "httpx", "httpx2"})

# What kind of thing a type is, decided once per type (isinstance against ABCs is slow on a hot path).
_SCALAR, _MAPPING, _SEQUENCE, _HTTP, _OBJECT = range(1, 6)  # never 0: `_kinds.get(t) or _kind(t)` reads once
_kinds: dict[type, int] = {}


def _kind(kind: type) -> int:
    found = _kinds.get(kind)
    if found is None:
        if issubclass(kind, _NO_USAGE_TYPES):
            found = _SCALAR
        elif issubclass(kind, Mapping):
            found = _MAPPING
        elif issubclass(kind, (tuple, list)):
            found = _SEQUENCE
        elif kind.__module__.partition(".")[0] in _HTTP_MODULES:
            found = _HTTP
        else:
            found = _OBJECT
        if len(_kinds) < 10_000:  # types made on the fly must not grow this without bound
            _kinds[kind] = found
    return found


Reading = tuple[int, int, int, "str | None", "str | None", object, "dict[str, object] | None"]
"""What one response says about its usage: ``(prompt, completion, total, model, request id, anchor, units)``.

The counts are valid; the model and request id are ``None`` when the response names none; the anchor is
the object that identifies this response, so that it is recorded once; the units are the
:data:`~tokenlog.record.UNIT_NAMES` the response gives, checked (``None`` when it gives none). A plain
tuple: building a NamedTuple cost the decorator 0.17 us a call.
"""

_UNIT_KEYS = frozenset(
    {
        "prompt_tokens_details",  # {"cached_tokens": n}: Mistral, OpenAI chat
        "prompt_token_details",  # the same, as some Mistral responses spell it
        "num_cached_tokens",  # Mistral, flat
        "input_tokens_details",  # OpenAI Responses API: cached_tokens
        "completion_tokens_details",  # OpenAI chat: reasoning_tokens
        "output_tokens_details",  # OpenAI Responses API: reasoning_tokens
        "connector_tokens",  # Mistral conversations: tokens the connectors added to the input
        "connectors",  # Mistral conversations: {"web_search": 1}
        "prompt_audio_seconds",  # Mistral transcriptions
        "service_tier",  # mistralai 3.x declares it on usage; OpenAI names it on the response
        "input_token_details",  # LangChain: cache_read
        "output_token_details",  # LangChain: reasoning
        "cache_read_input_tokens",  # Anthropic
        "cacheReadInputTokens",  # Bedrock Converse
        "cachedContentTokenCount",  # Gemini
        "cached_content_token_count",
        "thoughtsTokenCount",
        "thoughts_token_count",
        "pages_processed",  # Mistral OCR
    }
)
"""The keys of ``usage`` that carry units beyond the three counts."""


def extract_usage(obj: object, *, model: str | None = None) -> UsageRecord | None:
    """Return the usage in ``obj`` as a :class:`UsageRecord`, or ``None`` when it carries none.

    ``obj`` can be an SDK response (mistralai, openai), the ``dict`` a JSON API returned, a
    ``requests``/``httpx`` response whose body was read, a stream chunk, or a tuple/list holding
    one of those. The model is the response's own, else ``model``, else ``"unknown"``. Counts
    that are not non-negative integers give ``None`` and one :class:`TokenlogWarning` naming
    the field. This function never raises.

    >>> record = extract_usage({"model": "mistral-small", "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    >>> record.model, record.prompt_tokens, record.completion_tokens, record.total_tokens
    ('mistral-small', 3, 4, 7)
    """
    reading = read_usage(obj)
    if reading is None:
        return None
    prompt, completion, total, found, request_id, _, units = reading
    return UsageRecord(
        datetime.now(timezone.utc),
        found or model or "unknown",
        prompt,
        completion,
        total,
        request_id=request_id,
        **(units or {}),  # type: ignore[arg-type]
    )


def read_usage(obj: object) -> Reading | None:
    """Read usage from ``obj``; ``None`` if it has none or it is unusable (then one warning).

    Never raises. The valid part of a response is kept: a count that is missing or invalid is
    taken from the other two (``total = prompt + completion``), and a model or id that cannot be
    read is left out; one warning names each field that was not used as it was.
    """
    # The fast branch, for the two shapes nearly every call returns: an SDK response object (attributes)
    # and the JSON dict of requests/httpx (keys), each with its three counts and its model.
    kind = _kinds.get(type(obj)) or _kind(type(obj))
    try:
        if kind == _OBJECT:
            usage = obj.usage  # type: ignore[attr-defined]
            fast = (_kinds.get(type(usage)) or _kind(type(usage))) == _OBJECT
            if fast:
                prompt, completion, total = usage.prompt_tokens, usage.completion_tokens, usage.total_tokens
                model, request_id = obj.model, obj.id  # type: ignore[attr-defined]
                fields, extra = usage.__dict__, getattr(usage, "__pydantic_extra__", None)
                plain = not extra and "service_tier" not in obj.__dict__
                for key in _UNIT_KEYS.intersection(fields) if plain else ():  # mistralai 3.x declares two
                    value = fields[key]
                    if _is_set(value):  # set: read the units
                        plain = False
                        break
        else:
            fast = type(obj) is dict and type(usage := obj["usage"]) is dict
            if fast:
                prompt, completion, total = usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]
                model, request_id = obj.get("model"), obj.get("id")  # type: ignore[attr-defined]
                plain = _UNIT_KEYS.isdisjoint(usage) and "service_tier" not in obj  # type: ignore[operator]
        if fast and type(model) is str and model and _valid_counts(prompt, completion, total):
            units: dict[str, object] | None = None
            if not plain:  # a unit key is there (mistralai 3.x declares prompt_audio_seconds, mostly unset)
                problems: list[str] = []
                units = _units(usage, obj, problems)
                if problems:
                    _warn("; ".join(problems) + f" (model {model}); the rest was recorded")
            return (
                prompt,
                completion,
                total,
                model,
                request_id if type(request_id) is str and request_id else None,
                usage,
                units,
            )
    except Exception:  # a missing or raising field: the careful reading below says which, and keeps the rest
        pass
    try:
        located = _locate(obj, nested=False)
        if located is None:
            return None
        usage, response, anchor = located
        return _read(usage, response, anchor)
    except Exception as exc:  # an object whose attributes raise must not break the caller
        _warn(f"could not read usage from {article(type(obj).__qualname__)}: {exc!r}; no row written")
        return None


def _locate(obj: object, *, nested: bool) -> tuple[object, object, object] | None:
    """Find ``(usage, response that carries it, identity anchor)`` in ``obj``."""
    kind = _kind(type(obj))
    if kind == _OBJECT:
        usage = getattr(obj, "usage", None)
        if usage is not None:
            return usage, obj, usage
        raw = getattr(obj, "http_response", None)  # openai's with_raw_response (litellm makes every call so)
        if raw is not None and _kind(type(raw)) == _HTTP:
            return _locate(raw, nested=True)
        elsewhere = _usage_elsewhere(obj)
        if elsewhere is not None:
            return elsewhere[0], obj, elsewhere[1]
        if nested:
            return None
        data = getattr(obj, "data", None)  # mistralai CompletionEvent: the chunk is event.data
        if data is not None and _kind(type(data)) != _SEQUENCE:
            return _locate(data, nested=True)
        response = getattr(obj, "response", None)  # openai Responses stream: event.response on response.completed
        if response is not None and _kind(type(response)) != _HTTP:
            return _locate(response, nested=True)
        return None
    if kind == _MAPPING:
        assert isinstance(obj, Mapping)
        usage = obj.get("usage")
        if usage is not None:
            return usage, obj, usage
        elsewhere = _usage_elsewhere(obj)
        if elsewhere is not None:
            return elsewhere[0], obj, elsewhere[1]
        if nested:
            return None
        for key in ("data", "response"):  # an SSE event that wraps its chunk; an OpenAI Responses event
            inner = obj.get(key)
            if inner is not None and _kind(type(inner)) == _MAPPING:
                assert isinstance(inner, Mapping)
                body = inner.get("body")  # a line of a batch job's output: {"response": {"body": {...}}}
                if key == "response" and "usage" not in inner and _kind(type(body)) == _MAPPING:
                    return _locate(body, nested=True)
                return _locate(inner, nested=True)
        return None
    if kind == _SEQUENCE:
        assert isinstance(obj, (tuple, list))
        if nested:
            return None
        for item in obj:
            located = _locate(item, nested=True)
            if located is not None:
                return located
        return None
    if kind == _HTTP:
        body = _read_json_body(obj)
        located = _locate(body, nested=True) if isinstance(body, Mapping) else None
        # the body is parsed anew on every read, so the response object is what stays the same
        return (located[0], located[1], obj) if located is not None else None
    return None


def _usage_elsewhere(obj: object) -> tuple[object, object] | None:
    """``(usage, identity anchor)`` of a response that keeps its counts somewhere other than ``usage``."""
    for name in ("usageMetadata", "usage_metadata", "usage_info"):  # Gemini, LangChain's AIMessage; Mistral OCR
        found = _field(obj, name)
        if found is not None and _kind(type(found)) in (_MAPPING, _OBJECT):
            return found, found
    meta = _field(obj, "meta")  # Cohere v1: meta.billed_units
    if meta is not None and _kind(type(meta)) in (_MAPPING, _OBJECT):
        billed = _field(meta, "billed_units")
        if billed is not None:
            return billed, meta
    if _field(obj, "prompt_eval_count") is not None:  # Ollama: the counts are fields of the response itself
        return obj, obj
    return None


def stream_chunk_usage(chunk: object) -> tuple[str | None, bool, bool] | None:
    """``(model, carries usage, ends the reply)`` of a stream chunk; ``None`` if it is not readable.

    A chunk ends the reply when it has no choices (an OpenAI usage chunk, a mistralai
    ``ResponseDoneEvent``) or one of its choices has a ``finish_reason``. Never raises.
    """
    try:
        payload = _chunk_payload(chunk)
        if payload is None:
            return None
        model = _field(payload, "model")
        if _field(payload, "usage") is None:
            return (model if isinstance(model, str) and model else None), False, False
        choices = _field(payload, "choices")
        final = not choices or (
            isinstance(choices, (list, tuple)) and any(_field(choice, "finish_reason") for choice in choices)
        )
        return (model if isinstance(model, str) and model else None), True, final
    except Exception:
        return None


def _chunk_payload(chunk: object) -> object:
    """The part of a stream chunk that carries ``usage`` and ``choices``."""
    if isinstance(chunk, _NO_USAGE_TYPES):
        return None
    if isinstance(chunk, Mapping):
        if "usage" in chunk or "choices" in chunk:
            return chunk
        for key in ("data", "response"):
            inner = chunk.get(key)
            if isinstance(inner, Mapping):
                return inner
        return chunk
    if getattr(chunk, "usage", _MISSING) is not _MISSING:
        return chunk
    data = getattr(chunk, "data", None)
    if data is not None and not isinstance(data, (list, tuple, str, bytes)):
        return data
    response = getattr(chunk, "response", None)
    if response is not None and type(response).__module__.partition(".")[0] not in _HTTP_MODULES:
        return response
    return chunk


def _read_json_body(response: object) -> object:
    """The parsed JSON body of a requests/httpx response, only if its body was already read."""
    content = vars(response).get("_content") if hasattr(response, "__dict__") else None
    if not isinstance(content, bytes) or content.lstrip()[:1] != b"{":
        return None  # a streamed body that nobody read yet stays unread
    try:
        return json.loads(content)
    except ValueError:
        return None


_SPELLINGS = (
    ("prompt_tokens", "completion_tokens", "total_tokens"),  # Mistral, OpenAI chat
    ("input_tokens", "output_tokens", "total_tokens"),  # OpenAI Responses API, Anthropic, LangChain, Cohere
    ("inputTokens", "outputTokens", "totalTokens"),  # Amazon Bedrock Converse
    ("promptTokenCount", "candidatesTokenCount", "totalTokenCount"),  # Google Gemini, REST
    ("prompt_token_count", "candidates_token_count", "total_token_count"),  # Google Gemini, Python SDK
    ("prompt_eval_count", "eval_count", "total_tokens"),  # Ollama (which sends no total)
)
"""The names of (prompt, completion, total) in each provider's usage: the first whose prompt count is there."""

_MORE_INPUT = (
    "cache_read_input_tokens",  # Anthropic: input_tokens counts only the tokens after the last cache breakpoint
    "cache_creation_input_tokens",
    "cacheReadInputTokens",  # Bedrock Converse: likewise
    "cacheWriteInputTokens",
    "toolUsePromptTokenCount",  # Gemini: the tool results it read
    "tool_use_prompt_token_count",
)
"""Input counts a provider keeps apart from its prompt count: the row's prompt tokens include them."""
_MORE_OUTPUT = ("thoughtsTokenCount", "thoughts_token_count")
"""Output counts kept apart from the completion count (Gemini's thinking): the row's completion includes them."""


def _read(usage: object, response: object, anchor: object) -> Reading | None:
    billed = _field(usage, "billed_units")  # Cohere v2: usage.billed_units (usage.tokens is not what is billed)
    if billed is not None:
        usage = billed
    if _kind(type(usage)) == _MAPPING:
        assert isinstance(usage, Mapping)
        get: Callable[[str, object], object] = usage.get
    else:
        get = functools.partial(getattr, usage)

    names = list(_SPELLINGS[0])
    prompt = _count_field(get, names[0])
    for spelling in _SPELLINGS[1:]:
        if prompt is not _MISSING:
            break
        prompt = _count_field(get, spelling[0])
        if prompt is not _MISSING:
            names = list(spelling)
    completion = _count_field(get, names[1])
    total = _count_field(get, names[2])
    problems: list[str] = []
    prompt = _plus(prompt, get, _MORE_INPUT)
    completion = _plus(completion, get, _MORE_OUTPUT)
    model = _careful(_model_of, response, "model", problems)
    request_id = _careful(_request_id_of, response, "id", problems)
    units = _units(usage, response, problems)

    if _valid_counts(prompt, completion, total):  # the common case, checked first
        if problems:
            _warn("; ".join(problems) + f" (model {model or 'unknown'}); the rest was recorded")
        return prompt, completion, total, model, request_id, anchor, units  # type: ignore[return-value]

    values = [prompt, completion, total]
    if all(value is _MISSING for value in values) and units is not None and "pages" in units:
        return 0, 0, 0, model, request_id, anchor, units  # billed by the page (OCR): a row with 0 tokens
    if all(value is _MISSING for value in values):
        problems.insert(0, f"usage has neither prompt_tokens nor input_tokens ({_describe(usage)})")
        _warn("; ".join(problems) + "; no row written")
        return None
    explained = units is not None and ("connector_tokens" in units or "audio_seconds" in units)
    counts = _usable_counts(names, values, problems, explained)
    if counts is None:
        _warn("; ".join(problems) + f" (model {model or 'unknown'}); no row written for this response")
        return None
    if problems:
        _warn("; ".join(problems) + f" (model {model or 'unknown'}); the rest was recorded")
    return (*counts, model, request_id, anchor, units)


def _plus(count: object, get: Callable[[str, object], object], names: tuple[str, ...]) -> object:
    """``count`` plus the counts of ``names`` that are there (a value that is not a count is not added)."""
    if type(count) is not int:
        return count
    for name in names:
        more = _count_field(get, name)
        if type(more) is int and _is_count(more):
            count += more
    return count


def _usable_counts(
    names: list[str], values: list[object], problems: list[str], explained: bool = False
) -> tuple[int, int, int] | None:
    """Prompt, completion and total from what the response gave, or ``None`` if too little is usable.

    Any two valid counts give the third (``total = prompt + completion``); a prompt count alone
    is an embedding's (no completion). A total above prompt + completion holds tokens the API
    bills but counts in neither (a connector's, audio): they are input, so the row counts them as
    prompt tokens and stays valid, keeping the billed total; ``explained`` (the response names
    them in a unit) spares the note. Each value not used as given is noted in ``problems``.
    """
    for name, value in zip(names, values, strict=True):
        if value is not _MISSING and not _is_count(value):
            problems.append(_invalid(name, value))
    counts = [value if type(value) is int and _is_count(value) else None for value in values]
    if counts[0] is not None and values[1] is _MISSING and values[2] is _MISSING:
        return counts[0], 0, counts[0]  # an embedding: only a prompt count
    unknown = [index for index, count in enumerate(counts) if count is None]
    if len(unknown) > 1:
        for index in unknown:
            if values[index] is _MISSING:
                first = "neither prompt_tokens nor input_tokens" if names[0] == "prompt_tokens" else names[0]
                problems.append(f"usage has {first if index == 0 else 'no ' + names[index]}")
        return None
    for index in unknown:  # one count to work out from the other two (which are known: `or 0` never applies)
        if index == 2:
            derived, how = (counts[0] or 0) + (counts[1] or 0), f"{names[0]} + {names[1]}"
        else:
            derived, how = (counts[2] or 0) - (counts[1 - index] or 0), f"{names[2]} - {names[1 - index]}"
        if not 0 <= derived <= MAX_COUNT:
            problems.append(f"{how} is {derived}, expected a count for {names[index]}")
            return None
        counts[index] = derived
        if values[index] is not _MISSING or index == 0:  # a response without total or completion is normal
            if values[index] is _MISSING:
                problems.append(f"usage has no {names[index]}")
            problems[-1] += f", so the row has {names[index]} = {derived} ({how})"
    prompt, completion, total = (count or 0 for count in counts)
    if not unknown and total > prompt + completion:
        if not explained:
            problems.append(
                f"usage.{names[2]} is {total}, above {names[0]} + {names[1]} ({prompt + completion}); the "
                f"{total - prompt - completion} tokens more are counted as prompt tokens, so the row keeps the total"
            )
        prompt = total - completion
    elif not unknown and total != prompt + completion:
        problems.append(
            f"usage.{names[2]} is {total}, but {names[0]} + {names[1]} is {prompt + completion}; the row keeps "
            "the response's own numbers"
        )
    return prompt, completion, total


def _units(usage: object, response: object, problems: list[str]) -> dict[str, object] | None:
    """The units beyond the three counts that ``usage`` (and its response) give, checked; ``None`` if none.

    Reads every spelling of :data:`_UNIT_KEYS`, as keys or attributes (pydantic extras included). A value
    that is not what its unit holds is left out, with a note in ``problems``.
    """
    usage = _fields_of(usage)  # a dict: an absent attribute of a pydantic model costs 2 us to ask for
    outer = _fields_of(response)
    # The keys of usage that are there (a dict: which are; else any may be, as attributes) are the places to look.
    there = _UNIT_KEYS.intersection(usage) if type(usage) is dict else _UNIT_KEYS
    tier = _get(outer, "service_tier")
    if not tier and type(usage) is dict and not any(_is_set(usage[key]) for key in there):
        return None  # the common case: the keys are there (mistralai 3.x declares two), unset or null
    units: dict[str, object] = {}
    for unit, places in _UNIT_PLACES.items():
        for place, inner_name in places:
            if place not in there:
                continue
            value = _get(usage, place)
            if value is not None and inner_name is not None:
                value = _get(_fields_of(value), inner_name)
            if value is None:
                continue
            if _is_count(value):
                units[unit] = value
                break
            problems.append(
                f"usage.{place}{'.' + inner_name if inner_name else ''} is {_describe(value)}, "
                "expected a count, so the row has none"
            )
    if "connector_tokens" in there and (value := _get(usage, "connector_tokens")) is not None:
        if _is_count(value):
            units["connector_tokens"] = value
        else:
            problems.append(f"usage.connector_tokens is {_describe(value)}, expected a count, so the row has none")
    connectors = _get(usage, "connectors") if "connectors" in there else None
    if connectors is not None:
        calls = _field_items(connectors)
        if calls is not None and all(isinstance(name, str) and _is_count(n) for name, n in calls):
            units["connector_calls"] = types.MappingProxyType(dict(calls))
        else:
            problems.append(
                f"usage.connectors is {_describe(connectors)}, expected counts by name, so the row has none"
            )
    seconds = _get(usage, "prompt_audio_seconds") if "prompt_audio_seconds" in there else None
    if seconds is not None:
        if type(seconds) in (int, float) and 0 <= seconds < float("inf"):  # type: ignore[operator]
            units["audio_seconds"] = seconds
        else:
            problems.append(
                f"usage.prompt_audio_seconds is {_describe(seconds)}, expected seconds, so the row has none"
            )
    tier = (_get(usage, "service_tier") if "service_tier" in there else None) or tier
    if isinstance(tier, str) and tier:
        units["service_tier"] = tier
    return units or None


def _get(obj: object, name: str) -> object:
    """:func:`_field`, quicker for a plain dict (what :func:`_fields_of` makes of an SDK object)."""
    if type(obj) is dict:
        value = obj.get(name)
        return value if _is_set(value) else None
    return _field(obj, name)


def _is_set(value: object) -> bool:
    """Not ``None`` and not mistralai's ``UNSET``."""
    return value is not None and type(value).__name__ != "Unset"


_UNIT_PLACES: dict[str, tuple[tuple[str, str | None], ...]] = {
    "cached_tokens": (
        ("prompt_tokens_details", "cached_tokens"),  # Mistral, OpenAI chat
        ("prompt_token_details", "cached_tokens"),  # Mistral, another spelling
        ("num_cached_tokens", None),  # Mistral, flat
        ("input_tokens_details", "cached_tokens"),  # OpenAI Responses API
        ("input_token_details", "cache_read"),  # LangChain
        ("cache_read_input_tokens", None),  # Anthropic
        ("cacheReadInputTokens", None),  # Bedrock Converse
        ("cachedContentTokenCount", None),  # Gemini
        ("cached_content_token_count", None),
    ),
    "pages": (("pages_processed", None),),  # Mistral OCR: usage_info.pages_processed
    "reasoning_tokens": (
        ("completion_tokens_details", "reasoning_tokens"),  # OpenAI chat
        ("output_tokens_details", "reasoning_tokens"),  # OpenAI Responses API
        ("output_token_details", "reasoning"),  # LangChain
        ("thoughtsTokenCount", None),  # Gemini
        ("thoughts_token_count", None),
    ),
}
"""Where each provider puts its count of cached or of reasoning tokens: ``(key, inner key)``, or ``(key, None)``
for a count of its own; the first found wins."""


def _fields_of(obj: object) -> object:
    """``obj``'s fields as a dict (a pydantic model's extras included) when it keeps them in ``__dict__``; else
    ``obj`` itself (a mapping, or an object read by attribute)."""
    if type(obj) is dict or isinstance(obj, Mapping):
        return obj
    fields = getattr(obj, "__dict__", None)
    if type(fields) is not dict:
        return obj
    extra = getattr(obj, "__pydantic_extra__", None)
    return {**fields, **extra} if extra else fields


def _field_items(obj: object) -> list[tuple[object, object]] | None:
    """The items of a mapping, or of an object's fields (a pydantic model's, extras included); else ``None``."""
    if isinstance(obj, Mapping):
        return list(obj.items())
    fields = _fields_of(obj)
    if type(fields) is not dict:
        return None
    return [(name, value) for name, value in fields.items() if not name.startswith("_") and value is not None]


def _count_field(get: Callable[[str, object], object], name: str) -> object:
    """A count field's value: ``_MISSING`` if absent or ``None``, an :class:`_Unreadable` if reading it raised."""
    try:
        value = get(name, _MISSING)
    except Exception as exc:
        return _Unreadable(exc)
    return _MISSING if value is None else value


class _Unreadable(NamedTuple):
    """Reading a field raised this exception."""

    error: Exception


def _careful(read: Callable[[object], str | None], response: object, name: str, problems: list[str]) -> str | None:
    """``read(response)``; if that raises, ``None`` and a note in ``problems``."""
    try:
        return read(response)
    except Exception as exc:
        problems.append(f"the response's {name} could not be used ({exc!r}), so the row has none")
        return None


def _invalid(name: str, value: object) -> str:
    if isinstance(value, _Unreadable):
        return f"reading usage.{name} raised {value.error!r}"
    if type(value) is int and value > MAX_COUNT:
        return f"usage.{name} is {value}, expected a count below 2**63 (no database column holds more)"
    return f"usage.{name} is {_describe(value)}, expected a non-negative integer"


def _valid_counts(prompt: object, completion: object, total: object) -> bool:
    """The rule for a usable reading: three counts, and the total is prompt + completion."""
    return are_counts(prompt, completion, total) and total == prompt + completion  # type: ignore[operator]


def _is_count(value: object) -> bool:
    return are_counts(value, 0, 0)


def _field(obj: object, name: str) -> object:
    """``obj[name]`` or ``obj.name``; ``None`` when absent or unset (mistralai's ``UNSET`` is an ``Unset``)."""
    if _kind(type(obj)) == _MAPPING:
        assert isinstance(obj, Mapping)
        value = obj.get(name)
    else:
        value = getattr(obj, name, None)
    return value if _is_set(value) else None


def _model_of(response: object) -> str | None:
    """The model the response names; raises ``ValueError`` if its ``model`` is not text."""
    model = _field(response, "model")
    if isinstance(model, str) and model:
        return model
    if model is not None and not isinstance(model, str):
        raise ValueError(f"model is {_describe(model)}, expected the model's name")
    for name in ("modelVersion", "model_version"):  # Gemini
        model = _field(response, name)
        if isinstance(model, str) and model:
            return model
    metadata = _field(response, "response_metadata")  # LangChain's AIMessage
    if metadata is not None:
        for name in ("model_name", "model"):
            model = _field(metadata, name)
            if isinstance(model, str) and model:
                return model
    outputs = _field(response, "outputs")  # mistralai conversations name the model per output
    if isinstance(outputs, (list, tuple)):
        for output in reversed(outputs):
            model = _field(output, "model")
            if isinstance(model, str) and model:
                return model
    return None


def response_id(obj: object) -> str | None:
    """The request id a response names (its ``id``; for a requests/httpx response, its JSON's), else ``None``.

    Tells the JSON a function returns from the reply an HTTP or SDK call inside it recorded. Never raises.
    """
    try:
        kind = _kind(type(obj))
        if kind == _HTTP:
            obj = _read_json_body(obj)
            kind = _MAPPING if isinstance(obj, Mapping) else _SCALAR
        return _request_id_of(obj) if kind in (_OBJECT, _MAPPING) else None
    except Exception:  # an object whose attributes raise is no known reply
        return None


def _request_id_of(response: object) -> str | None:
    """The response's ``id``; else its ``conversation_id`` (a Mistral conversation), ``responseId`` (Gemini)
    or ``generation_id`` (Cohere v1)."""
    for name in ("id", "conversation_id", "responseId", "response_id", "generation_id"):
        request_id = _field(response, name)
        if isinstance(request_id, str) and request_id:
            return request_id
    return None


def _describe(usage: object) -> str:
    text = repr(usage)
    return text if len(text) <= 120 else text[:117] + "..."


def _warn(message: str) -> None:
    warn(message)
