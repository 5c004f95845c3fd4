"""The official Google Gen AI Python SDK (`google-genai` 3.x) against aigw's Gemini routes
(/gateway/gemini/v1beta/models/{endpoint}:generateContent and :streamGenerateContent), one
endpoint per provider, each played by a fake upstream (tests/it/common/fake.rs) that answers from
a script: `You said: <last user text> [system: …] [messages: n]`, a get_weather call per city
asked about, a text quoting tool results, and its own 429 for `[429]`.

The SDK composes its URLs as `<base_url>/<api_version>/models/<model>:<method>` (streams add
`?alt=sse`) and sends the key as `x-goog-api-key`, so the client is made with
`http_options={"base_url": "<gateway>/gateway/gemini", "api_version": "v1beta"}` and the model is
the endpoint's name.

For each provider, whole (`generate_content`) and streamed (`generate_content_stream`): a text
with a system instruction, a function-call round trip (the model's content sent back as the SDK
returned it, then `Part.from_function_response`), and a rate-limit error. One `<provider>: <case>
(<mode>) OK` line is printed per case; tests/it/sdk/gemini_generate.rs checks them all.

Arguments: the gateway URL, the URL of a second gateway that requires a key, and a JSON object:
{"key": <the second gateway's key>, "endpoint": <an endpoint on it>, "cut": <an endpoint whose
upstream stream stops after one text>, "providers": [{"name", "model", "usage": [prompt,
candidates]}]}."""

import json
import sys

from google import genai
from google.genai import errors, types

base, keyed_base, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])


def client(url, key):
    return genai.Client(
        api_key=key, http_options={"base_url": f"{url}/gateway/gemini", "api_version": "v1beta"}
    )


gateway = client(base, "not-used-by-the-gateway")

WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="The current weather of a city",
            parameters=types.Schema(
                type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]
            ),
        )
    ]
)


def ok(provider, case, mode):
    print(f"{provider['name']}: {case} ({mode}) OK", flush=True)


def generate(model, contents, cfg, mode):
    """A response for the request, whole or streamed: (text, function calls, last usage, finish)."""
    if mode == "whole":
        r = gateway.models.generate_content(model=model, contents=contents, config=cfg)
        calls = r.function_calls or []
        finish = r.candidates[0].finish_reason
        return r.text or "", calls, r.usage_metadata, finish, r.candidates[0].content, r.model_version
    text, calls, usage, finish, parts, version = "", [], None, None, [], None
    for chunk in gateway.models.generate_content_stream(model=model, contents=contents, config=cfg):
        assert finish is None, "nothing after the chunk with the finish reason"
        candidate = chunk.candidates[0]
        for p in candidate.content.parts or []:
            parts.append(p)
            if p.text and not p.thought:
                text += p.text
            if p.function_call:
                calls.append(p.function_call)
        usage = chunk.usage_metadata or usage
        finish = candidate.finish_reason
        version = chunk.model_version
    assert finish is not None, "the stream ended with a finish reason"
    return text, calls, usage, finish, types.Content(role="model", parts=parts), version


for provider in config["providers"]:
    model = provider["name"]
    for mode in ("whole", "stream"):
        # Text with a system instruction, and the usage.
        cfg = types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.5, max_output_tokens=200)
        text, calls, usage, finish, _, version = generate(model, "Hello there", cfg, mode)
        assert text == "You said: Hello there [system: Be brief.] [messages: 1]", text
        assert not calls and finish == types.FinishReason.STOP, (calls, finish)
        assert version == provider["model"], version
        prompt, candidates = provider["usage"]
        assert (usage.prompt_token_count, usage.candidates_token_count) == (prompt, candidates), usage
        assert usage.total_token_count >= prompt + candidates, usage
        ok(provider, "text", mode)

        # A function call round trip: two calls, answered by name (no ids, as the SDK's helper).
        cfg = types.GenerateContentConfig(
            tools=[WEATHER], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
        )
        question = types.Content(role="user", parts=[types.Part.from_text(text="What's the weather in Paris and Rome?")])
        text, calls, _, finish, content, _ = generate(model, [question], cfg, mode)
        assert [(c.name, c.args) for c in calls] == [
            ("get_weather", {"city": "Paris"}),
            ("get_weather", {"city": "Rome"}),
        ], calls
        assert finish == types.FinishReason.STOP, finish
        answers = types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(name=c.name, response={"result": f"Sunny in {c.args['city']}"})
                for c in calls
            ],
        )
        text, calls, _, _, _, _ = generate(model, [question, content, answers], cfg, mode)
        assert text.startswith("The weather tool says:") and "Sunny in Rome" in text, text
        assert not calls, calls
        ok(provider, "tools round trip", mode)

        # The provider's rate limit: Google's error shape, raised by the SDK.
        try:
            generate(model, "please [429]", None, mode)
            raise AssertionError("no error")
        except errors.ClientError as e:
            assert e.code == 429 and e.status == "RESOURCE_EXHAUSTED", (e.code, e.status, e.message)
            assert e.message, e
        ok(provider, "rate limit", mode)

    # What only a native endpoint serves: a clear 400 on a translated one.
    try:
        gateway.models.generate_content(
            model=model,
            contents="Hi",
            config=types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())]),
        )
        assert provider["name"] == "gemini", "refused on a translated endpoint"
    except errors.ClientError as e:
        assert provider["name"] != "gemini", e
        assert e.code == 400 and e.status == "INVALID_ARGUMENT" and "googleSearch" in e.message, e
    ok(provider, "google search", "whole")

# A stream cut short upstream after its first text: the text, then the SDK raises Google's error.
texts = []
try:
    for chunk in gateway.models.generate_content_stream(model=config["cut"], contents="Hi"):
        texts.append(chunk.text)
    raise AssertionError("no error")
except errors.ServerError as e:
    assert e.code == 502 and e.status == "UNAVAILABLE", (e.code, e.status, e.message)
assert texts == ["Hel"], texts
print("error mid-stream OK", flush=True)

# Gateway keys: the SDK's x-goog-api-key header.
keyed = client(keyed_base, config["key"])
r = keyed.models.generate_content(model=config["endpoint"], contents="Hi")
assert r.text.startswith("You said: Hi"), r.text
try:
    # (The client is kept in a variable: a collected Client closes its connection pool.)
    wrong = client(keyed_base, "wrong-key-0123456789")
    wrong.models.generate_content(model=config["endpoint"], contents="Hi")
    raise AssertionError("a wrong key was accepted")
except errors.ClientError as e:
    assert e.code == 401 and e.status == "UNAUTHENTICATED", (e.code, e.status)
print("gateway keys OK", flush=True)
print("google-genai SDK: OK", flush=True)
