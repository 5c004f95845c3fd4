"""The official OpenAI SDK's view of streams aigw translated from other providers' wire formats:
deltas concatenate to the text, exactly one chunk carries a finish_reason, usage is present when
the upstream reported it. Argument 1: the gateway URL; argument 2: a JSON list of
{"model", "text", "usage"} expectations."""

import json
import sys

import openai

base, cases = sys.argv[1], json.loads(sys.argv[2])
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
for case in cases:
    pieces, finishes, usage = [], [], None
    stream = client.chat.completions.create(
        model=case["model"], messages=[{"role": "user", "content": "Hello"}], stream=True
    )
    for chunk in stream:
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason:
                finishes.append(c.finish_reason)
        if chunk.usage:
            usage = chunk.usage
    text = "".join(pieces)
    assert text == case["text"], (case["model"], text, case["text"])
    assert len(finishes) == 1, (case["model"], finishes)
    if case["usage"]:
        assert usage is not None and usage.total_tokens > 0, (case["model"], usage)
    print(f"{case['model']}: {len(pieces)} deltas, finish_reason {finishes[0]!r}, usage {usage is not None}")
print("translated streams through the openai SDK: OK")
