"""The OpenAI Agents SDK (`openai-agents` 0.24.x) through aigw's /v1/responses: one agent with a
function tool (`@function_tool`), run to its final output (`Runner.run`) and streamed
(`Runner.run_streamed`), for each endpoint named on the command line. The fakes behind the
gateway (tests/it/common/fake.rs) call get_weather for the city asked about, then answer
`The weather tool says: <the tool's result>`. Tracing is off: nothing leaves this machine.

Arguments: the gateway URL and a JSON list of endpoint names. One `<endpoint>: agent (<mode>) OK`
line per endpoint and mode; tests/it/sdk/openai_responses.rs checks them and what the fakes
received."""

import asyncio
import json
import sys

from openai import AsyncOpenAI
from agents import (
    Agent,
    ItemHelpers,
    Runner,
    function_tool,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)

base, models = sys.argv[1], json.loads(sys.argv[2])
set_tracing_disabled(True)
set_default_openai_client(
    AsyncOpenAI(base_url=base + "/v1", api_key="not-used-by-the-gateway", max_retries=0), use_for_tracing=False
)
set_default_openai_api("responses")

calls = []


@function_tool
def get_weather(city: str) -> str:
    """The current weather of a city.

    Args:
        city: The city.
    """
    calls.append(city)
    return f"Sunny, 22°C in {city}"


def agent(model):
    return Agent(
        name="Weather",
        instructions="Answer questions about the weather with the get_weather tool.",
        model=model,
        tools=[get_weather],
    )


def check(model, mode, result, city):
    assert calls == [city], (model, mode, calls)
    assert result.final_output == f"The weather tool says: Sunny, 22°C in {city}", (model, mode, result.final_output)
    kinds = [item.type for item in result.new_items]
    assert kinds == ["message_output_item", "tool_call_item", "tool_call_output_item", "message_output_item"], kinds
    assert ItemHelpers.text_message_outputs(result.new_items[:1]) == "Let me check the weather.", result.new_items[0]
    print(f"{model}: agent ({mode}) OK", flush=True)


async def main():
    for model in models:
        calls.clear()
        result = await Runner.run(agent(model), "What's the weather in Paris?")
        check(model, "run", result, "Paris")

        calls.clear()
        result = Runner.run_streamed(agent(model), "What's the weather in Rome?")
        deltas, events = [], []
        async for event in result.stream_events():
            if event.type == "raw_response_event":
                events.append(event.data.type)
                if event.data.type == "response.output_text.delta":
                    deltas.append(event.data.delta)
        assert events.count("response.completed") == 2, events
        assert "".join(deltas) == "Let me check the weather.The weather tool says: Sunny, 22°C in Rome", deltas
        check(model, "streamed", result, "Rome")


asyncio.run(main())
print("openai-agents against /v1/responses: OK")
