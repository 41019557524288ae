"""Scripted agents that play SearchGym episodes (the oracle that writes SFT transcripts)."""
