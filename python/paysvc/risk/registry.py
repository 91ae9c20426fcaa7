"""The risk models this process can score with: loaded once per process from the package's
``models/`` directory, then from ``PAYSVC_RISK_MODELS_DIR`` (a file there replaces the packaged
model of the same id).

A file that fails to load (corrupt, or built for other features) is logged and kept as a known id
without a model: settings may still name it, and payments scored with it get ``risk_level``
``unknown`` while the rules still run (brief section 8). A model id no file names is unknown: 400.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import msgspec

from paysvc._native import CoreError, RiskModel
from paysvc.resources import RiskModelOut

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gbdt_v1"
MODEL_SUFFIX = ".json"


@dataclass(frozen=True)
class ModelRegistry:
    models: dict[str, RiskModel]  # id -> the loaded model
    broken: dict[str, str]  # id (the file's name) -> why it did not load

    def known(self, model_id: str) -> bool:
        return model_id in self.models or model_id in self.broken

    def get(self, model_id: str | None) -> RiskModel | None:
        """The model, or None when it is missing or failed to load (scored as ``unknown``)."""
        return None if model_id is None else self.models.get(model_id)

    def listed(self) -> list[RiskModelOut]:
        return [
            RiskModelOut(id=model.id, kind=model.kind, features=list(model.features),
                         metrics=msgspec.json.decode(model.metrics_json), created_at=model.created_at)
            for _, model in sorted(self.models.items())
        ]


def _files(folder: Traversable) -> list[Traversable]:
    if not folder.is_dir():
        return []
    return sorted((f for f in folder.iterdir() if f.name.endswith(MODEL_SUFFIX)), key=lambda f: f.name)


def load_models(extra_dir: str | None) -> ModelRegistry:
    models: dict[str, RiskModel] = {}
    broken: dict[str, str] = {}
    folders: list[Traversable] = [resources.files("paysvc.risk").joinpath("models")]
    if extra_dir is not None:
        folders.append(Path(extra_dir))
    for folder in folders:
        for entry in _files(folder):
            stem = entry.name.removesuffix(MODEL_SUFFIX)
            try:
                model = RiskModel.load(entry.read_bytes())
            except (CoreError, OSError) as exc:
                log.error("risk model file %s does not load; payments it would score get risk_level unknown: %s",
                          entry, getattr(exc, "message", exc))
                models.pop(stem, None)
                broken[stem] = str(exc)
                continue
            broken.pop(model.id, None)
            models[model.id] = model
    log.info("risk models loaded: %s", ", ".join(sorted(models)) or "none")
    return ModelRegistry(models, broken)


@functools.cache
def registry(extra_dir: str | None) -> ModelRegistry:
    """The process's models (loaded on first use, once per directory setting)."""
    return load_models(extra_dir)
