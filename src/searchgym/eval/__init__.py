"""Evaluation: run a model as an agent on a task set, score it, write trajectories and a report."""
