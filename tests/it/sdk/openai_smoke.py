"""The official OpenAI Python SDK against aigw: chat, streaming, completions, embeddings,
model listing and error mapping. Run by tests/it/sdk/mod.rs with the gateway's base URL."""

import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=base + "/v1", api_key="not-used-by-the-gateway", max_retries=0)
prompt = [{"role": "user", "content": "Hello from the SDK"}]

r = client.chat.completions.create(model="chat", messages=prompt)
text = r.choices[0].message.content
assert text == "This is a mock response to: Hello from the SDK", text
assert r.choices[0].finish_reason == "stop"
assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0

pieces, finishes, usage = [], [], None
for chunk in client.chat.completions.create(model="chat", messages=prompt, stream=True):
    for c in chunk.choices:
        if c.delta.content:
            pieces.append(c.delta.content)
        if c.finish_reason:
            finishes.append(c.finish_reason)
    if chunk.usage:
        usage = chunk.usage
assert "".join(pieces) == text, pieces
assert finishes == ["stop"], finishes
assert usage is not None and usage.total_tokens > 0

c = client.completions.create(model="completions", prompt="Say hi")
assert c.choices[0].text == "This is a mock response to: Say hi", c

# The SDK asks for base64 embeddings by default and decodes them.
e = client.embeddings.create(model="embeddings", input=["a", "b"])
assert len(e.data) == 2 and len(e.data[0].embedding) == 8
e2 = client.embeddings.create(model="embeddings", input="a", encoding_format="float")
assert abs(e2.data[0].embedding[0] - e.data[0].embedding[0]) < 1e-6

ids = [m.id for m in client.models.list()]
assert ids == ["chat", "completions", "embeddings"], ids

try:
    client.chat.completions.create(model="nope", messages=prompt)
    raise AssertionError("unknown model must fail")
except openai.NotFoundError as err:
    assert err.status_code == 404 and "nope" in err.message

try:
    client.chat.completions.create(model="chat", messages=[])
    raise AssertionError("empty messages must fail")
except openai.BadRequestError as err:
    assert err.status_code == 400

try:
    client.embeddings.create(model="chat", input="x")
    raise AssertionError("wrong endpoint type must fail")
except openai.BadRequestError as err:
    assert "not an embeddings endpoint" in err.message

print("openai SDK smoke test: OK")
