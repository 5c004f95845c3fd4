"""The official Anthropic Python SDK (`anthropic` 2.x) against aigw's /v1/messages, one endpoint per
provider, each provider played by a fake upstream (tests/it/common/fake.rs) that answers from a
script: `You said: <last user text> [system: …] [images: n] [messages: n]`, a get_weather call per
city asked about, a text quoting tool results, thinking when asked (Anthropic only), its own 429
for `[429]` and Anthropic's 529 for `[529]`.

Every case runs three ways: whole (`messages.create`), the SDK's stream helper
(`messages.stream`: text events and `get_final_message()`), and a raw `stream=True` iteration
whose event order is checked and whose message is rebuilt from the events. One `<provider>:
<case> (<mode>) OK` line is printed per case and mode; tests/it/sdk/anthropic_messages.rs checks
them all.

Arguments: the gateway URL, the URL of a second gateway that requires a key, and a JSON object:
{"key": <the second gateway's key>, "providers": [{"name", "model", "upstream_model", "native",
"usage": [input, cache_read, output], "stream_usage": [...], "count_tokens", "image_url"}]}, where
image_url says what a URL image becomes: "image" (an image), "note" (a text note) or "refused"
(a 400)."""

import json
import sys

import anthropic

base, keyed_base, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = anthropic.Anthropic(base_url=base, api_key="not-used-by-the-gateway", max_retries=0)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
IMAGE_URL = "https://example.com/cat.png"
WEATHER = {
    "name": "get_weather",
    "description": "The current weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
MODES = ("whole", "helper", "raw")


def ok(provider, case, mode=None):
    print(f"{provider['name']}: {case}{f' ({mode})' if mode else ''} OK", flush=True)


# ---- one request, three ways ----


def rebuild(events):
    """A raw event stream checked for Anthropic's order and rebuilt into a message dict."""
    types = [e.type for e in events]
    assert types and types[0] == "message_start", types
    assert types[-1] == "message_stop" and types.count("message_stop") == 1, types
    assert types.count("message_delta") == 1 and types[-2] == "message_delta", types
    message = events[0].message.model_dump()
    assert message["content"] == [] and message["stop_reason"] is None, message
    blocks, open_index, partial = [], None, {}
    for e in events[1:-2]:
        if e.type == "ping":
            continue
        if e.type == "content_block_start":
            assert open_index is None, f"block {e.index} starts while {open_index} is open: {types}"
            assert e.index == len(blocks), (e.index, len(blocks))
            open_index = e.index
            blocks.append(e.content_block.model_dump(exclude_none=True))
            if blocks[-1]["type"] == "tool_use":
                assert blocks[-1]["input"] == {}, blocks[-1]
                partial[e.index] = ""
        elif e.type == "content_block_delta":
            assert e.index == open_index, (e.index, open_index)
            d, b = e.delta, blocks[e.index]
            if d.type == "text_delta":
                b["text"] += d.text
            elif d.type == "thinking_delta":
                b["thinking"] += d.thinking
            elif d.type == "signature_delta":
                b["signature"] = d.signature
            elif d.type == "input_json_delta":
                partial[e.index] += d.partial_json
            else:
                raise AssertionError(f"unexpected delta {d.type}")
        elif e.type == "content_block_stop":
            assert e.index == open_index, (e.index, open_index)
            open_index = None
            if e.index in partial:
                blocks[e.index]["input"] = json.loads(partial[e.index] or "{}")
        else:
            raise AssertionError(f"unexpected event {e.type} in {types}")
    assert open_index is None, f"block {open_index} never stopped: {types}"
    end = events[-2]
    assert end.delta.stop_reason is not None, end
    message["content"] = blocks
    message["stop_reason"] = end.delta.stop_reason
    message["stop_sequence"] = end.delta.stop_sequence
    for k, v in end.usage.model_dump().items():
        if v is not None:
            message["usage"][k] = v
    return message


def ask(mode, **params):
    """The answer's message as a dict, asked `mode`'s way."""
    if mode == "whole":
        return client.messages.create(**params).model_dump(exclude_none=True)
    if mode == "helper":
        with client.messages.stream(**params) as stream:
            texts = list(stream.text_stream)
            final = stream.get_final_message().model_dump(exclude_none=True)
        said = "".join(b["text"] for b in final["content"] if b["type"] == "text")
        assert "".join(texts) == said, (texts, said)
        return final
    events = list(client.messages.create(stream=True, **params))
    return rebuild(events)


def expect_error(error_class, mode, **params):
    """The SDK's error for a request that must fail, asked `mode`'s way."""
    try:
        if mode == "helper":
            with client.messages.stream(**params) as stream:
                stream.get_final_message()
        else:
            result = client.messages.create(stream=mode == "raw", **params)
            if mode == "raw":
                list(result)
    except error_class as err:
        return err
    raise AssertionError(f"{params['model']} ({mode}): expected {error_class.__name__}")


def text_of(message):
    return "".join(b["text"] for b in message["content"] if b["type"] == "text")


def check_message(provider, message, mode, stop_reason="end_turn"):
    assert message["type"] == "message" and message["role"] == "assistant", message
    assert message["id"].startswith("msg_"), message["id"]
    assert message["model"] == provider["upstream_model"], (message["model"], provider["upstream_model"])
    assert message["stop_reason"] == stop_reason, message
    u = message["usage"]
    want = provider["usage" if mode == "whole" else "stream_usage"]
    got = [u["input_tokens"], u.get("cache_read_input_tokens") or 0, u["output_tokens"]]
    assert got == want, (provider["name"], mode, got, want)


# ---- the cases ----


def simple(provider, case, mode, expected, **params):
    m = ask(mode, model=provider["model"], max_tokens=256, **params)
    check_message(provider, m, mode)
    assert [b["type"] for b in m["content"]] == ["text"], m["content"]
    assert text_of(m) == expected, (provider["name"], case, mode, text_of(m), expected)
    ok(provider, case, mode)


def weather(provider, mode, cities, results):
    """A tool round trip: the model calls get_weather per city, gets the results, answers."""
    question = f"What's the weather in {' and '.join(cities)}?"
    messages = [{"role": "user", "content": question}]
    m = ask(mode, model=provider["model"], max_tokens=256, tools=[WEATHER], messages=messages)
    check_message(provider, m, mode, "tool_use")
    assert [b["type"] for b in m["content"]] == ["text"] + ["tool_use"] * len(cities), m["content"]
    assert text_of(m) == "Let me check the weather.", m
    calls = m["content"][1:]
    assert [c["name"] for c in calls] == ["get_weather"] * len(cities), calls
    assert [c["input"] for c in calls] == [{"city": c} for c in cities], calls
    ids = [c["id"] for c in calls]
    assert all(ids) and len(set(ids)) == len(ids), ids
    messages.append({"role": "assistant", "content": m["content"]})
    messages.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": i, "content": r} for i, r in zip(ids, results)],
        }
    )
    m = ask(mode, model=provider["model"], max_tokens=256, tools=[WEATHER], messages=messages)
    check_message(provider, m, mode)
    assert text_of(m) == "The weather tool says: " + "; ".join(results), text_of(m)
    ok(provider, f"tools {'+'.join(cities)}", mode)


def thinking(provider, mode):
    params = dict(
        model=provider["model"],
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Think about it"}],
    )
    # Native providers take thinking as sent; Gemini (a thinking budget) and Claude on Bedrock
    # (additionalModelRequestFields) take it through the translation; the others refuse it.
    if provider["native"] or provider["name"] in ("gemini", "bedrock"):
        m = ask(mode, **params)
        check_message(provider, m, mode)
        assert [b["type"] for b in m["content"]] == ["thinking", "text"], m["content"]
        assert m["content"][0]["thinking"] == 'The user wrote "Think about it". A short answer will do.', m
        if provider["name"] != "gemini":  # Gemini's thoughts are not signed
            assert m["content"][0]["signature"], m
        assert text_of(m) == "You said: Think about it [messages: 1]", m
    else:
        err = expect_error(anthropic.BadRequestError, mode, **params)
        assert err.status_code == 400, err
        assert err.body["type"] == "error", err.body
        assert err.body["error"]["type"] == "invalid_request_error", err.body
        assert "'thinking'" in err.body["error"]["message"], err.body
    ok(provider, "thinking", mode)


def image_url(provider, mode):
    content = [{"type": "image", "source": {"type": "url", "url": IMAGE_URL}}, {"type": "text", "text": "What is this?"}]
    params = dict(model=provider["model"], max_tokens=256, messages=[{"role": "user", "content": content}])
    if provider["image_url"] == "refused":
        err = expect_error(anthropic.BadRequestError, mode, **params)
        assert err.body["error"]["type"] == "invalid_request_error", err.body
        assert "base64" in err.body["error"]["message"], err.body
        ok(provider, "image url", mode)
        return
    if provider["image_url"] == "image":
        expected = "You said: What is this? [images: 1] [messages: 1]"
    else:
        expected = f"You said: Image URL: {IMAGE_URL} What is this? [messages: 1]"
    simple(provider, "image url", mode, expected, messages=params["messages"])


def rate_limited(provider, mode):
    err = expect_error(
        anthropic.RateLimitError,
        mode,
        model=provider["model"],
        max_tokens=256,
        messages=[{"role": "user", "content": "[429] too fast"}],
    )
    assert err.status_code == 429 and err.body["type"] == "error", err.body
    assert err.body["error"]["type"] == "rate_limit_error", err.body
    ok(provider, "rate limit", mode)


def cases(provider):
    for mode in MODES:
        hello = [{"role": "user", "content": "Hello"}]
        simple(provider, "text", mode, "You said: Hello [messages: 1]", messages=hello)
        simple(
            provider,
            "system string",
            mode,
            "You said: Hello [system: Be brief.] [messages: 1]",
            system="Be brief.",
            messages=hello,
        )
        simple(
            provider,
            "system blocks",
            mode,
            "You said: Hello [system: Be brief.\nAnswer in English.] [messages: 1]",
            system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in English."}],
            messages=hello,
        )
        turns = [
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
        ]
        simple(provider, "multi-turn", mode, "You said: What is my name? [messages: 3]", messages=turns)
        picture = [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "text", "text": "What is this?"},
        ]
        simple(
            provider,
            "image base64",
            mode,
            "You said: What is this? [images: 1] [messages: 1]",
            messages=[{"role": "user", "content": picture}],
        )
        image_url(provider, mode)
        weather(provider, mode, ["Paris"], ["Sunny, 22°C"])
        weather(provider, mode, ["Paris", "Rome"], ["Sunny, 22°C", "Rainy, 15°C"])
        thinking(provider, mode)
        rate_limited(provider, mode)

    count = client.messages.count_tokens(model=provider["model"], messages=[{"role": "user", "content": "Hello"}])
    assert count.input_tokens == provider["count_tokens"], (provider["name"], count)
    ok(provider, "count_tokens")

    if provider["native"]:
        # The body reaches Anthropic as the client sent it, with only `model` replaced: the Rust
        # side compares it with the line printed here.
        body = dict(
            model=provider["model"],
            max_tokens=300,
            system=[{"type": "text", "text": "Native.", "cache_control": {"type": "ephemeral"}}],
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "native body", "cache_control": {"type": "ephemeral"}}],
                }
            ],
            metadata={"user_id": "user-1"},
            stop_sequences=["END"],
            tools=[WEATHER],
            tool_choice={"type": "auto"},
            speed="standard",
        )
        # anthropic 2.x has no temperature or top_k parameters any more; the API still takes them.
        extra = {"temperature": 0.5, "top_k": 5}
        m = client.messages.create(**body, extra_body=extra)
        assert text_of(m.model_dump()) == "You said: native body [system: Native.] [messages: 1]", m
        print("NATIVE_BODY " + json.dumps({**body, **extra}), flush=True)
        print("ANTHROPIC_VERSION " + client.default_headers["anthropic-version"], flush=True)
        ok(provider, "native body")

        for mode in MODES:
            err = expect_error(
                anthropic.InternalServerError,
                mode,
                model=provider["model"],
                max_tokens=256,
                messages=[{"role": "user", "content": "[529] busy"}],
            )
            assert err.status_code == 529, err
            assert isinstance(err, anthropic.OverloadedError), type(err)
            assert err.body["error"]["type"] == "overloaded_error", err.body
            ok(provider, "overloaded", mode)


for provider in config["providers"]:
    cases(provider)

# Errors that do not depend on the provider.
any_model = config["providers"][0]["model"]
try:
    client.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    raise AssertionError("an unknown model must fail")
except anthropic.NotFoundError as err:
    assert err.status_code == 404 and err.body["error"]["type"] == "not_found_error", err.body
    assert "no-such-model" in err.body["error"]["message"], err.body
print("gateway: unknown model OK")

try:
    # The SDK requires max_tokens itself: send the body without it through the client's post.
    client.post(
        "/v1/messages",
        body={"model": any_model, "messages": [{"role": "user", "content": "Hi"}]},
        cast_to=anthropic.types.Message,
    )
    raise AssertionError("a missing max_tokens must fail")
except anthropic.BadRequestError as err:
    assert err.body["error"]["type"] == "invalid_request_error", err.body
    assert "max_tokens" in err.body["error"]["message"], err.body
print("gateway: missing max_tokens OK")

keyed = anthropic.Anthropic(base_url=keyed_base, api_key="sk-wrong-key-0123456789", max_retries=0)
try:
    keyed.messages.create(model=any_model, max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    raise AssertionError("a wrong gateway key must fail")
except anthropic.AuthenticationError as err:
    assert err.status_code == 401 and err.body["error"]["type"] == "authentication_error", err.body
keyed = anthropic.Anthropic(base_url=keyed_base, api_key=config["key"], max_retries=0)
m = keyed.messages.create(model=any_model, max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
assert text_of(m.model_dump()) == "You said: Hi [messages: 1]", m
print("gateway: gateway key OK")

print("anthropic SDK against /v1/messages: OK")
