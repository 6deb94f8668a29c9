"""The gateway in front of the project's vLLM simulator: its counters against vLLM-named counters."""

from __future__ import annotations

import openai
import pytest

from finops.gateway import GatewaySettings, create_app
from tests.gateway.conftest import ALPHA, ALPHA_KEY, BETA, BETA_KEY, KEYS, scrape, total
from tests.support.uvicorn_server import serve

sim = pytest.importorskip("finops.simulate.vllm")  # another module's simulator: use it if it is there

MODEL = "Sim-7B"
TOKENS = "finops_gateway_tokens_total"


def test_gateway_counts_equal_the_simulators_vllm_counters() -> None:
    cfg = sim.VllmSimConfig(served_model_name=MODEL, token_delay=0.0, max_model_len=2048)
    with serve(sim.create_app(cfg)) as upstream, \
            serve(create_app(GatewaySettings(upstream_url=upstream, keys=KEYS))) as gw:
        alpha = openai.OpenAI(base_url=gw + "/v1", api_key=ALPHA_KEY, max_retries=0)
        beta = openai.OpenAI(base_url=gw + "/v1", api_key=BETA_KEY, max_retries=0)
        with alpha, beta:
            prompt = alpha_gen = 0
            r = alpha.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi there"}],
                                              max_tokens=12)
            assert r.usage is not None
            prompt, alpha_gen = prompt + r.usage.prompt_tokens, alpha_gen + r.usage.completion_tokens
            chunks = list(alpha.completions.create(model=MODEL, prompt="count to ten", max_tokens=9, stream=True,
                                                   stream_options={"include_usage": True}))
            usage = chunks[-1].usage
            assert usage is not None
            prompt, alpha_gen = prompt + usage.prompt_tokens, alpha_gen + usage.completion_tokens
            # Beta streams without asking for usage: it must see none, and still be counted.
            for _ in range(3):
                chunks = list(beta.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "write a short poem"}], max_tokens=15,
                    stream=True))
                assert all(c.usage is None and c.choices for c in chunks)
            beta.completions.create(model=MODEL, prompt="and one whole", max_tokens=5)
        s, v = scrape(gw), scrape(upstream)
    vllm_prompt = total(v, "vllm:prompt_tokens_total")
    vllm_gen = total(v, "vllm:generation_tokens_total")
    assert vllm_gen > alpha_gen > 0
    assert total(s, TOKENS, **ALPHA, kind="prompt") == prompt
    assert total(s, TOKENS, **ALPHA, kind="generation") == alpha_gen
    assert total(s, TOKENS, kind="prompt") == vllm_prompt
    assert total(s, TOKENS, kind="generation") == vllm_gen
    assert total(s, TOKENS, **BETA, kind="generation") == vllm_gen - alpha_gen > 0
    assert total(s, TOKENS, model_id=MODEL.lower()) == vllm_prompt + vllm_gen
