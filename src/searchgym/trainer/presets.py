"""Training presets: YAML files shipped in `searchgym/trainer/presets_yaml/`, addressed by name
(`--config cpu-tiny`) or by path (copy one to start your own)."""

from __future__ import annotations

from pathlib import Path

from searchgym.config import ConfigError

CONFIGS_DIR = Path(__file__).resolve().parent / "presets_yaml"


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def resolve_preset(name_or_path: str) -> Path:
    """A path to an existing YAML file, or the shipped preset `<name>.yaml`."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    preset = CONFIGS_DIR / f"{name_or_path}.yaml"
    if preset.exists():
        return preset
    raise ConfigError(f"{name_or_path!r} is neither a YAML file nor a preset; presets: {preset_names()}")
