"""The official OpenAI Python SDK (`openai` 3.x) against aigw's /v1/responses, one endpoint per
provider, each provider played by a fake upstream (tests/it/common/fake.rs) that answers from a
script: `You said: <last user text> [system: …] [images: n] [previous: id] [messages: n]`, a
get_weather call per city asked about, a text quoting tool results, `{"said": <text>}` when a JSON
schema reached it, a reasoning item when asked (OpenAI's own Responses API only), its own 429 for
`[429]` and a stream broken off after its first word for `[cut]`.

The `openai` endpoint goes to OpenAI's own Responses API (the fake answers it natively); every
other endpoint is translated, `groq` being OpenAI's chat completions through an OpenAI-compatible
provider.

Every case runs three ways: whole (`responses.create`), the SDK's stream helper
(`responses.stream`: its text deltas and `get_final_response()`), and a raw `stream=True`
iteration whose event order and sequence numbers are checked and whose output is rebuilt from
the events. One `<provider>: <case> (<mode>) OK` line is printed per case and mode;
tests/it/sdk/openai_responses.rs checks them all, then what each fake received.

Arguments: the gateway URL, the URL of a second gateway that requires a key, and a JSON object:
{"key": <the second gateway's key>, "providers": [{"name", "model", "upstream_model", "native",
"usage": [input, cached, output, total] or null, "stream_usage": …, "image_url", "reasoning",
"json_schema", "cut"}]}, where image_url says what a URL image becomes ("image", "note": a text
note, "refused": a 400), reasoning whether `reasoning.effort` is served ("native"), translated into the provider's
own field ("translated") or refused,
json_schema whether the schema reaches the model ("json") or is dropped, and cut which events a
client sees of a stream broken off upstream ("failed": `response.failed` then `error`, "error":
`error` alone)."""

import json
import sys

import openai

base, keyed_base, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = openai.OpenAI(base_url=base + "/v1", api_key="not-used-by-the-gateway", max_retries=0)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
IMAGE_URL = "https://example.com/cat.png"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
SCHEMA = {
    "type": "object",
    "properties": {"said": {"type": "string"}},
    "required": ["said"],
    "additionalProperties": False,
}
MODES = ("whole", "helper", "raw")


def ok(provider, case, mode=None):
    print(f"{provider['name']}: {case}{f' ({mode})' if mode else ''} OK", flush=True)


# ---- one request, three ways ----

# The events between an item's `response.output_item.added` and `response.output_item.done`, by
# item type: (event type, repeated).
ITEM_EVENTS = {
    "message": [
        ("response.content_part.added", False),
        ("response.output_text.delta", True),
        ("response.output_text.done", False),
        ("response.content_part.done", False),
    ],
    "function_call": [
        ("response.function_call_arguments.delta", True),
        ("response.function_call_arguments.done", False),
    ],
    "reasoning": [
        ("response.reasoning_summary_part.added", False),
        ("response.reasoning_summary_text.delta", True),
        ("response.reasoning_summary_text.done", False),
        ("response.reasoning_summary_part.done", False),
    ],
    "web_search_call": [
        ("response.web_search_call.in_progress", False),
        ("response.web_search_call.searching", False),
        ("response.web_search_call.completed", False),
    ],
}


def check_item_events(added, inner, done):
    """One item's events: in order, about this item, its fragments adding up to the done item."""
    item, index = added.item, added.output_index
    kind = item.type
    types = [e.type for e in inner]
    expected = ITEM_EVENTS[kind]
    at = 0
    for name, repeated in expected:
        if repeated:
            while at < len(types) and types[at] == name:
                at += 1
        else:
            assert at < len(types) and types[at] == name, (kind, name, types)
            at += 1
    assert at == len(types), (kind, types)
    for e in inner:
        assert e.output_index == index and e.item_id == item.id, (e, item.id)
    whole = done.item
    assert done.output_index == index and whole.id == item.id and whole.type == kind, (added, done)
    fragments = "".join(e.delta for e in inner if e.type.endswith(".delta"))
    if kind == "message":
        assert item.status == "in_progress" and item.content == [], item
        assert inner[0].part.text == "" and inner[0].content_index == 0, inner[0]
        assert inner[-2].text == fragments and inner[-1].part.text == fragments, (inner[-2], fragments)
        assert whole.status == "completed" and [c.text for c in whole.content] == [fragments], whole
    elif kind == "function_call":
        assert item.status == "in_progress" and item.arguments == "", item
        assert inner[-1].arguments == fragments, (inner[-1], fragments)
        assert (whole.call_id, whole.name, whole.arguments) == (item.call_id, item.name, fragments), (item, whole)
        assert whole.status == "completed", whole
    elif kind == "reasoning":
        assert item.summary == [], item
        assert inner[-2].text == fragments and inner[-1].part.text == fragments, inner
        assert [s.text for s in whole.summary] == [fragments], whole
    else:
        assert item.status == "in_progress" and whole.status == "completed", (item, whole)


def rebuild(events):
    """A raw event stream checked for the Responses API's order and sequence numbers; the final
    response, whose output must be the items as the events built them."""
    types = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events))), [e.sequence_number for e in events]
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] == "response.completed" and types.count("response.completed") == 1, types
    created = events[0].response
    assert created.status == "in_progress" and created.output == [] and created.usage is None, created
    assert events[1].response.id == created.id, events[1]
    items, at = [], 2
    while at < len(events) - 1:
        added = events[at]
        assert added.type == "response.output_item.added", (at, types)
        assert added.output_index == len(items), (added.output_index, len(items))
        end = next(i for i in range(at + 1, len(events)) if events[i].type == "response.output_item.done")
        check_item_events(added, events[at + 1 : end], events[end])
        items.append(events[end].item)
        at = end + 1
    final = events[-1].response
    assert final.id == created.id, (final.id, created.id)
    assert [i.model_dump() for i in final.output] == [i.model_dump() for i in items], (final.output, items)
    return final


def ask(mode, **params):
    """The answer's `response`, asked `mode`'s way."""
    if mode == "whole":
        return client.responses.create(**params)
    if mode == "helper":
        with client.responses.stream(**params) as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
        assert "".join(deltas) == final.output_text, (deltas, final.output_text)
        return final
    return rebuild(list(client.responses.create(stream=True, **params)))


def expect_error(error_class, mode, **params):
    """The SDK's error for a request that must fail, asked `mode`'s way."""
    try:
        if mode == "helper":
            with client.responses.stream(**params) as stream:
                stream.get_final_response()
        else:
            result = client.responses.create(stream=mode == "raw", **params)
            if mode == "raw":
                list(result)
    except error_class as err:
        return err
    raise AssertionError(f"{params['model']} ({mode}): expected {error_class.__name__}")


def check_response(provider, r, mode):
    assert r.object == "response" and r.id.startswith("resp_"), r
    assert r.status == "completed" and r.error is None, r
    assert r.model == provider["upstream_model"], (r.model, provider["upstream_model"])
    want = provider["usage" if mode == "whole" else "stream_usage"]
    if want is None:
        assert r.usage is None, (provider["name"], mode, r.usage)
    else:
        u = r.usage
        got = [u.input_tokens, u.input_tokens_details.cached_tokens, u.output_tokens, u.total_tokens]
        assert got == want, (provider["name"], mode, got, want)


# ---- the cases ----


def simple(provider, case, mode, expected, types=("message",), **params):
    r = ask(mode, model=provider["model"], **params)
    check_response(provider, r, mode)
    assert [o.type for o in r.output] == list(types), r.output
    assert r.output_text == expected, (provider["name"], case, mode, r.output_text, expected)
    ok(provider, case, mode)
    return r


def refused(provider, case, mode, param, **params):
    """A 400 naming `param`, before anything is streamed."""
    err = expect_error(openai.BadRequestError, mode, model=provider["model"], **params)
    assert err.status_code == 400, err
    assert err.param == param, (err.param, param, err.body)
    assert f"'{param}'" in err.message, err.message
    assert err.type == "invalid_request_error", err.body
    ok(provider, case, mode)


def weather(provider, mode, cities, results):
    """A tool round trip: the model calls get_weather per city, gets the results, answers."""
    question = f"What's the weather in {' and '.join(cities)}?"
    conversation = [{"role": "user", "content": question}]
    r = ask(mode, model=provider["model"], tools=[WEATHER], input=conversation)
    check_response(provider, r, mode)
    assert [o.type for o in r.output] == ["message"] + ["function_call"] * len(cities), r.output
    assert r.output_text == "Let me check the weather.", r.output_text
    calls = [o for o in r.output if o.type == "function_call"]
    assert [c.name for c in calls] == ["get_weather"] * len(cities), calls
    assert [json.loads(c.arguments) for c in calls] == [{"city": c} for c in cities], calls
    ids = [c.call_id for c in calls]
    assert all(ids) and len(set(ids)) == len(ids), ids
    # The answer's items go back as they came, then one output per call.
    conversation += [o.model_dump(exclude_none=True) for o in r.output]
    conversation += [{"type": "function_call_output", "call_id": i, "output": res} for i, res in zip(ids, results)]
    r = ask(mode, model=provider["model"], tools=[WEATHER], input=conversation)
    check_response(provider, r, mode)
    assert r.output_text == "The weather tool says: " + "; ".join(results), r.output_text
    ok(provider, f"tools {'+'.join(cities)}", mode)


def image_url(provider, mode):
    content = [{"type": "input_image", "image_url": IMAGE_URL}, {"type": "input_text", "text": "What is this?"}]
    params = dict(input=[{"role": "user", "content": content}])
    if provider["image_url"] == "refused":
        # A 400 saying the provider takes images only as data (Converse has no image URLs).
        err = expect_error(openai.BadRequestError, mode, model=provider["model"], **params)
        assert err.status_code == 400 and "image" in err.message.lower(), err.message
        ok(provider, "image url", mode)
        return
    if provider["image_url"] == "image":
        expected = "You said: What is this? [images: 1] [messages: 1]"
    else:
        expected = f"You said: Image URL: {IMAGE_URL} What is this? [messages: 1]"
    simple(provider, "image url", mode, expected, **params)


def json_schema(provider, mode):
    text = {"format": {"type": "json_schema", "name": "echo", "schema": SCHEMA, "strict": True}}
    r = ask(mode, model=provider["model"], input="Hello", text=text)
    check_response(provider, r, mode)
    said = "You said: Hello [messages: 1]"
    if provider["json_schema"] == "json":
        assert json.loads(r.output_text) == {"said": said}, r.output_text
    else:
        # Today's behaviour: the schema never reaches the model (see the Rust test).
        assert r.output_text == said, r.output_text
    assert r.text.format.type == "json_schema", r.text
    ok(provider, "json_schema", mode)


def reasoning(provider, mode):
    params = dict(input="Think about it", reasoning={"effort": "low", "summary": "auto"})
    if provider["reasoning"] == "refused":
        refused(provider, "reasoning.effort", mode, "reasoning.effort", **params)
        return
    if provider["reasoning"] == "translated":
        # The effort went upstream in the provider's own field (the Rust test checks which);
        # the fake answers with its usual echo, as the model's message.
        r = ask(mode, model=provider["model"], **params)
        check_response(provider, r, mode)
        assert r.output[-1].type == "message", r.output
        assert "Think about it" in r.output_text, r.output_text
        ok(provider, "reasoning.effort", mode)
        return
    r = simple(
        provider,
        "reasoning.effort",
        mode,
        "You said: Think about it [messages: 1]",
        types=("reasoning", "message"),
        **params,
    )
    assert [s.text for s in r.output[0].summary] == ['The user wrote "Think about it". A short answer will do.'], r


def native_only(provider, mode):
    previous = dict(input="Go on", previous_response_id="resp_prev123")
    search = dict(input="Search the news", tools=[{"type": "web_search"}])
    if not provider["native"]:
        refused(provider, "previous_response_id", mode, "previous_response_id", **previous)
        refused(provider, "web_search", mode, "tools (web_search)", **search)
        return
    r = simple(
        provider, "previous_response_id", mode, "You said: Go on [previous: resp_prev123] [messages: 1]", **previous
    )
    assert r.previous_response_id == "resp_prev123", r
    r = simple(
        provider,
        "web_search",
        mode,
        "You said: Search the news [messages: 1]",
        types=("web_search_call", "message"),
        **search,
    )
    assert r.output[0].action.query == "Search the news", r.output[0]


def rate_limited(provider, mode):
    err = expect_error(openai.RateLimitError, mode, model=provider["model"], input="[429] too fast")
    assert err.status_code == 429 and err.message, err
    ok(provider, "rate limit", mode)


def mid_stream_failure(provider, mode):
    """The upstream breaks off after the first word: the SDK raises for the error event."""
    params = dict(model=provider["model"], input="[cut] Hello")
    seen = []
    try:
        if mode == "helper":
            with client.responses.stream(**params) as stream:
                for e in stream:
                    seen.append(e)
        else:
            for e in client.responses.create(stream=True, **params):
                seen.append(e)
        raise AssertionError(f"{provider['name']} ({mode}): the broken stream must raise")
    except openai.APIStatusError as err:
        raise AssertionError(f"an error status ({err.status_code}) instead of an error event") from err
    except openai.APIError as err:
        error = err
    types = [e.type for e in seen]
    deltas = [e.delta for e in seen if e.type == "response.output_text.delta"]
    assert deltas == ["You"], (deltas, types)
    assert [e.sequence_number for e in seen] == list(range(len(seen))), seen
    if provider["cut"] == "failed":
        assert types[-1] == "response.failed", types
        failed = seen[-1].response
        assert failed.status == "failed" and failed.error.message, failed
        assert failed.output[0].status == "incomplete" and failed.output[0].content[0].text == "You", failed.output
    else:
        assert "response.failed" not in types, types
    assert error.message and "stream" in error.message.lower(), error.message
    assert isinstance(error.body, dict) and error.body.get("message") == error.message, error.body
    ok(provider, "mid-stream failure", mode)


def cases(provider):
    for mode in MODES:
        simple(provider, "text", mode, "You said: Hello [messages: 1]", input="Hello")
        simple(
            provider,
            "instructions",
            mode,
            "You said: Hello [system: Be brief.] [messages: 1]",
            instructions="Be brief.",
            input="Hello",
        )
        turns = [
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "My name is Ada."},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello Ada."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "What is my name?"}]},
        ]
        simple(
            provider,
            "multi-turn",
            mode,
            "You said: What is my name? [system: Be brief.\nAnswer in English.] [messages: 3]",
            instructions="Be brief.",
            input=turns,
        )
        picture = [
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
            {"type": "input_text", "text": "What is this?"},
        ]
        simple(
            provider,
            "image base64",
            mode,
            "You said: What is this? [images: 1] [messages: 1]",
            input=[{"role": "user", "content": picture}],
        )
        image_url(provider, mode)
        weather(provider, mode, ["Paris"], ["Sunny, 22°C"])
        weather(provider, mode, ["Paris", "Rome"], ["Sunny, 22°C", "Rainy, 15°C"])
        json_schema(provider, mode)
        reasoning(provider, mode)
        native_only(provider, mode)
        rate_limited(provider, mode)
        if mode != "whole":
            mid_stream_failure(provider, mode)

    if provider["native"]:
        # The body reaches OpenAI as the client sent it, with only `model` replaced: the Rust
        # side compares it with the line printed here.
        body = dict(
            model=provider["model"],
            instructions="Native.",
            input=[{"role": "user", "content": [{"type": "input_text", "text": "native body"}]}],
            tools=[WEATHER, {"type": "web_search"}],
            tool_choice="auto",
            parallel_tool_calls=False,
            previous_response_id="resp_prev123",
            store=True,
            metadata={"run": "sdk-test"},
            include=["reasoning.encrypted_content", "web_search_call.action.sources"],
            reasoning={"effort": "low", "summary": "auto"},
            text={"format": {"type": "text"}, "verbosity": "low"},
            max_output_tokens=300,
            temperature=0.5,
            top_p=0.9,
            prompt_cache_key="sdk-test",
            safety_identifier="user-1",
        )
        r = client.responses.create(**body)
        assert [o.type for o in r.output] == ["reasoning", "web_search_call", "message"], r.output
        assert r.output_text == "You said: native body [system: Native.] [previous: resp_prev123] [messages: 1]", r
        print("NATIVE_BODY " + json.dumps(body), flush=True)
        ok(provider, "native body")

        # A field aigw does not know reaches OpenAI as sent on the native path.
        r = client.responses.create(**body, extra_body={"future_field": {"x": 1}})
        assert r.output_text == "You said: native body [system: Native.] [previous: resp_prev123] [messages: 1]", r
        ok(provider, "unknown field")


for provider in config["providers"]:
    cases(provider)

# Errors that do not depend on the provider.
any_model = config["providers"][0]["model"]
try:
    client.responses.create(model="no-such-model", input="Hi")
    raise AssertionError("an unknown model must fail")
except openai.NotFoundError as err:
    assert err.status_code == 404 and "no-such-model" in err.message, err
print("gateway: unknown model OK")

keyed = openai.OpenAI(base_url=keyed_base + "/v1", api_key="sk-wrong-key-0123456789", max_retries=0)
try:
    keyed.responses.create(model=any_model, input="Hi")
    raise AssertionError("a wrong gateway key must fail")
except openai.AuthenticationError as err:
    assert err.status_code == 401, err
keyed = openai.OpenAI(base_url=keyed_base + "/v1", api_key=config["key"], max_retries=0)
r = keyed.responses.create(model=any_model, input="Hi")
assert r.output_text == "You said: Hi [messages: 1]", r
print("gateway: gateway key OK")

print("openai SDK against /v1/responses: OK")
