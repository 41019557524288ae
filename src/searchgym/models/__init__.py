"""Model helpers: tiny CPU models and tokenizers (`tiny`), loading local and GGUF checkpoints (`load`)."""
