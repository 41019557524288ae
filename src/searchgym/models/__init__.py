"""Model helpers: tiny CPU models and tokenizers, loading HF and GGUF checkpoints."""
