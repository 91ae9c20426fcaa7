"""A tenant's risk settings and rules as the API takes them (PUT /v1/risk/settings, /v1/risk/rules),
checked here; the rules' predicates are checked by the Rust rules language (``risk_rules_check``)."""

from __future__ import annotations

from typing import get_args

import msgspec

from paysvc import _native, ids
from paysvc.errors import ApiError, from_core
from paysvc.resources import RiskChallenger, RiskRule, RiskRules, RiskSettings, RiskThresholds, RuleAction
from paysvc.risk.registry import DEFAULT_MODEL, ModelRegistry

MODES = ("off", "shadow", "enforce")
MAX_RULES = 100
MAX_SHADOW_MODELS = 10

DEFAULT_SETTINGS = RiskSettings(
    mode="shadow", thresholds=RiskThresholds(elevated=65, highest=75), champion=DEFAULT_MODEL, challenger=None,
    shadow_models=[],
)


class ThresholdsIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    elevated: int
    highest: int


class ChallengerIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    model: str
    percent: int


class RiskSettingsIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """PUT replaces the settings: an omitted field takes its default."""

    mode: str = "shadow"
    thresholds: ThresholdsIn | None = None
    champion: str = DEFAULT_MODEL
    challenger: ChallengerIn | None = None
    shadow_models: list[str] = msgspec.field(default_factory=list)


class RiskRuleIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    action: str
    predicate: str


class RiskRulesIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    rules: list[RiskRuleIn]


def _model(models: ModelRegistry, model_id: str, param: str) -> str:
    if not models.known(model_id):
        raise ApiError("parameter_invalid", f"Unknown risk model: '{model_id}' (GET /v1/risk/models lists them).",
                       param=param)
    return model_id


def check_settings(body: RiskSettingsIn, models: ModelRegistry) -> RiskSettings:
    if body.mode not in MODES:
        raise ApiError("parameter_invalid", f"mode must be one of {', '.join(MODES)}.", param="mode")
    thresholds = DEFAULT_SETTINGS.thresholds
    if body.thresholds is not None:
        elevated, highest = body.thresholds.elevated, body.thresholds.highest
        if not 0 <= elevated <= highest <= 100:
            raise ApiError("parameter_invalid", "thresholds must satisfy 0 <= elevated <= highest <= 100.",
                           param="thresholds")
        thresholds = RiskThresholds(elevated=elevated, highest=highest)
    champion = _model(models, body.champion, "champion")
    challenger = None
    if body.challenger is not None:
        if not 0 <= body.challenger.percent <= 100:
            raise ApiError("parameter_invalid", "challenger.percent must be an integer from 0 to 100.",
                           param="challenger.percent")
        challenger = RiskChallenger(model=_model(models, body.challenger.model, "challenger.model"),
                                    percent=body.challenger.percent)
    if len(body.shadow_models) > MAX_SHADOW_MODELS:
        raise ApiError("parameter_invalid", f"shadow_models holds at most {MAX_SHADOW_MODELS} models.",
                       param="shadow_models")
    shadows = [_model(models, m, f"shadow_models[{i}]") for i, m in enumerate(body.shadow_models)]
    return RiskSettings(mode=body.mode, thresholds=thresholds, champion=champion,  # type: ignore[arg-type]
                        challenger=challenger, shadow_models=shadows)


def check_rules(body: RiskRulesIn) -> RiskRules:
    """The rules with fresh ids, in the order sent; 400 for the first bad one."""
    if len(body.rules) > MAX_RULES:
        raise ApiError("parameter_invalid", f"rules holds at most {MAX_RULES} rules.", param="rules")
    actions = get_args(RuleAction)
    for index, rule in enumerate(body.rules):
        if rule.action not in actions:
            raise ApiError("parameter_invalid", f"action must be one of {', '.join(actions)}.",
                           param=f"rules[{index}].action")
    try:
        _native.risk_rules_check([rule.predicate for rule in body.rules])
    except _native.CoreError as exc:
        raise from_core(exc) from None
    return RiskRules(rules=[
        RiskRule(id=ids.encode(ids.RULE, ids.new_uuid()), action=rule.action,  # type: ignore[arg-type]
                 predicate=rule.predicate)
        for rule in body.rules
    ])
