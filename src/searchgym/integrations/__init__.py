"""Adapters to other frameworks: task exports, TRL tool environments, verl, OpenEnv, reward functions."""
