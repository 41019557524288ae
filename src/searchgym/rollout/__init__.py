"""Generation backends, multi-turn rollouts with exact token bookkeeping, TRL/verl adapters.

Import the submodules directly (`searchgym.rollout.rollout`, `.hf`, `.openai`, `.adapters`); this package stays
light so `searchgym --help` does not import torch.
"""
