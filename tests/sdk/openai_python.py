"""Drives the bridge with the official openai-python SDK.

Usage: python openai_python.py BASE_URL SCENARIO MODEL
Prints one JSON object describing what the SDK returned; the Rust test checks it.
"""

import json
import sys

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


SCENARIOS = {f.__name__: f for f in (stream_text, stream_helper_tools, non_stream, mid_stream_error, not_found)}

if __name__ == "__main__":
    base_url, scenario, model = sys.argv[1:4]
    print(json.dumps(SCENARIOS[scenario](client(base_url), model)))
