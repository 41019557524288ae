"""SearchGym: train LLM search agents with RL in a simulated, verifiable world."""

__version__ = "0.1.0"
