"""FinOps for self-hosted LLM inference: what a thousand generated tokens cost, per team and model."""

__version__ = "0.1.0"
