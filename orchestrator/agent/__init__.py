"""The LLM agent: reviews the deterministic plan through any OpenAI-compatible endpoint.

    from orchestrator.agent import LLMConfig, review
    cfg = LLMConfig.from_env()          # None unless OPENAI_API_KEY or OPENAI_BASE_URL is set
    outcome = review(baseline_plan, context, config=cfg)
    outcome.plan        # AgentPlan: planner "llm:<model>" or "baseline-fallback"
    outcome.calls       # [LLMCall]: model, tokens, cost, latency, outcome
    outcome.fallback_reason

Whatever the model answers, its plan only *proposes*: validation and the risk gate decide.
"""

from orchestrator.agent.client import AgentOutcome, LLMCall, LLMConfig, review
from orchestrator.agent.schema import LLMAction, LLMDrop, LLMPlan

__all__ = ["AgentOutcome", "LLMAction", "LLMCall", "LLMConfig", "LLMDrop", "LLMPlan", "review"]
