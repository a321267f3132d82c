"""Drives the bridge with the official openai-python SDK.

Usage: python openai_python.py BASE_URL SCENARIO MODEL
Prints one JSON object describing what the SDK returned; the Rust test checks it.
"""

import json
import os
import sys
import time

import openai
import pydantic


class GetWeather(pydantic.BaseModel):
    """Get the current weather for a city."""

    city: str
    unit: str | None = None


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=20)


def stream_text(c: openai.OpenAI, model: str) -> dict:
    stream = c.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, chunks = "", None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage.model_dump(exclude_none=True)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return {"text": text, "finish_reason": finish, "usage": usage, "chunks": chunks}


def stream_helper_tools(c: openai.OpenAI, model: str) -> dict:
    with c.chat.completions.stream(
        model=model,
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[openai.pydantic_function_tool(GetWeather, name="get_weather")],
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    call = message.tool_calls[0]
    return {
        "finish_reason": final.choices[0].finish_reason,
        "content": message.content,
        "id": call.id,
        "name": call.function.name,
        "arguments": call.function.arguments,
        "parsed_arguments": call.function.parsed_arguments.model_dump(),
        "parsed_type": type(call.function.parsed_arguments).__name__,
    }


def non_stream(c: openai.OpenAI, model: str) -> dict:
    completion = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    choice = completion.choices[0]
    extra = choice.message.model_extra or {}
    return {
        "type": type(completion).__name__,
        "text": choice.message.content,
        "reasoning_content": extra.get("reasoning_content"),
        "finish_reason": choice.finish_reason,
        "usage": completion.usage.model_dump(exclude_none=True),
    }


def mid_stream_error(c: openai.OpenAI, model: str) -> dict:
    text = ""
    try:
        for chunk in c.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            for choice in chunk.choices:
                text += choice.delta.content or ""
    except openai.APIError as e:
        return {"text": text, "error": type(e).__name__, "message": e.message}
    return {"text": text, "error": None}


def not_found(c: openai.OpenAI, model: str) -> dict:
    try:
        c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=True)
    except openai.APIStatusError as e:
        return {"error": type(e).__name__, "status": e.status_code, "body": e.body}
    return {"error": None}


def auth_and_rate_limit(c: openai.OpenAI, model: str) -> dict:
    """A wrong key, then the right one (OLLAMA_BRIDGE_TEST_KEY) until its rate limit, a
    wait of Retry-After seconds, and one more request."""
    messages = [{"role": "user", "content": "hi"}]
    out: dict = {}
    try:
        c.with_options(api_key="sk-wrong").chat.completions.create(model=model, messages=messages)
    except openai.AuthenticationError as e:
        out["wrong_key"] = {"status": e.status_code, "type": e.type, "code": e.code}
    keyed = c.with_options(api_key=os.environ["OLLAMA_BRIDGE_TEST_KEY"])
    raw = keyed.chat.completions.with_raw_response.create(model=model, messages=messages)
    names = ("limit", "remaining", "reset")
    out["first"] = {
        "content": raw.parse().choices[0].message.content,
        **{n: raw.headers.get(f"x-ratelimit-{n}-requests") for n in names},
    }
    try:
        keyed.chat.completions.create(model=model, messages=messages)
    except openai.RateLimitError as e:
        headers = e.response.headers
        out["limited"] = {
            "status": e.status_code,
            "type": e.type,
            "code": e.code,
            "retry_after": headers.get("retry-after"),
            **{n: headers.get(f"x-ratelimit-{n}-requests") for n in names},
        }
        time.sleep(float(headers["retry-after"]))
    stream = keyed.chat.completions.create(model=model, messages=messages, stream=True)
    out["after_wait"] = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    return out


def models(c: openai.OpenAI, model: str) -> dict:
    """Lists the models, retrieves MODEL, and chats through the alias `gpt-4o-mini`."""
    listed = c.models.list()
    one = c.models.retrieve(model)
    try:
        c.models.retrieve("nope:latest")
        missing = None
    except openai.NotFoundError as e:
        missing = {"status": e.status_code, "type": e.type, "code": e.code}
    reply = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    return {
        "ids": sorted(m.id for m in listed.data),
        "retrieved": one.model_dump(exclude_none=True),
        "missing": missing,
        "alias_model": reply.model,
        "alias_content": reply.choices[0].message.content,
    }


def embeddings(c: openai.OpenAI, model: str) -> dict:
    """The same inputs as floats and in the SDK's default format (base64, decoded by it)."""
    inputs = ["hello world", "second"]
    floats = c.embeddings.create(model=model, input=inputs, encoding_format="float")
    decoded = c.embeddings.create(model=model, input=inputs)
    return {
        "float": [d.embedding for d in floats.data],
        "base64_decoded": [d.embedding for d in decoded.data],
        "indexes": [d.index for d in decoded.data],
        "usage": floats.usage.model_dump(),
        "model": floats.model,
    }


def completions(c: openai.OpenAI, model: str) -> dict:
    """Legacy completions: one whole, one streamed with two prompts x n=2, one refused."""
    whole = c.completions.create(model=model, prompt="Once", max_tokens=4, echo=True)
    texts: dict[int, str] = {}
    finishes: dict[int, list[str]] = {}
    usage = None
    stream = c.completions.create(
        model=model,
        prompt=["a", "b"],
        n=2,
        seed=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.model_dump(exclude_none=True)
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            if choice.finish_reason is not None:
                finishes.setdefault(choice.index, []).append(choice.finish_reason)
    try:
        c.completions.create(model=model, prompt=[1, 2, 3])
        refused = None
    except openai.BadRequestError as e:
        refused = {"status": e.status_code, "param": e.param, "type": e.type}
    return {
        "whole": {
            "object": whole.object,
            "id_prefix": whole.id.split("-")[0],
            "text": whole.choices[0].text,
            "finish_reason": whole.choices[0].finish_reason,
            "usage": whole.usage.model_dump(exclude_none=True),
        },
        "stream": {
            "texts": [texts[i] for i in sorted(texts)],
            "finishes": [finishes.get(i) for i in sorted(texts)],
            "usage": usage,
        },
        "refused": refused,
    }


def chat_choices(c: openai.OpenAI, model: str) -> dict:
    """n=3 streamed (the SDK keeps choices apart by index) and n=2 whole."""
    contents: dict[int, str] = {}
    finishes: dict[int, list[str]] = {}
    stream = c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], n=3, seed=7, stream=True
    )
    for chunk in stream:
        for choice in chunk.choices:
            contents[choice.index] = contents.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason is not None:
                finishes.setdefault(choice.index, []).append(choice.finish_reason)
    whole = c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], n=2
    )
    return {
        "stream": [contents[i] for i in sorted(contents)],
        "finishes": [finishes.get(i) for i in sorted(contents)],
        "whole": [ch.message.content for ch in whole.choices],
        "whole_usage": whole.usage.model_dump(exclude_none=True),
    }


SCENARIOS = {
    f.__name__: f
    for f in (
        stream_text,
        stream_helper_tools,
        non_stream,
        mid_stream_error,
        not_found,
        auth_and_rate_limit,
        models,
        embeddings,
        completions,
        chat_choices,
    )
}

if __name__ == "__main__":
    base_url, scenario, model = sys.argv[1:4]
    print(json.dumps(SCENARIOS[scenario](client(base_url), model)))
