"""Risk on the payment path: one native call decides (``RiskPolicy.assess``), two record the
payment in the source's and the destination's risk state; this module turns the decision into the
payment's ``outcome`` (brief section 8)."""

from __future__ import annotations

import logging
import uuid

from paysvc import ids
from paysvc._native import RiskAssessment
from paysvc.resources import OutcomeType, PaymentOutcome
from paysvc.risk.cache import TenantRisk

# Shadow models' scores: logged for offline comparison, never acted on, never shown.
shadow_log = logging.getLogger("paysvc.risk.shadow")
# The feature vector each payment was scored with (DEBUG): what the model saw online, to compare with
# the features the offline tools recompute for the same payment.
feature_log = logging.getLogger("paysvc.risk.features")

# What risk_state_record calls the payment, by the payment's outcome type.
STATE_OUTCOMES: dict[OutcomeType, str] = {
    "authorized": "authorized", "manual_review": "authorized", "declined": "declined", "blocked": "blocked",
}


def not_assessed(outcome_type: OutcomeType) -> PaymentOutcome:
    """The outcome of a payment risk did not look at (no policy on this path)."""
    return PaymentOutcome(type=outcome_type, risk_score=None, risk_level="not_assessed", reason=None, rule=None,
                          model=None, arm=None)


def render(risk: TenantRisk, assessment: RiskAssessment, outcome_type: OutcomeType) -> PaymentOutcome:
    index = assessment.rule_index
    return PaymentOutcome(
        type=outcome_type,
        risk_score=assessment.risk_score,
        risk_level=assessment.risk_level,  # type: ignore[arg-type]
        reason=assessment.reason,  # type: ignore[arg-type]
        rule=None if index is None else risk.rules[index],
        model=assessment.model,
        arm=assessment.arm,  # type: ignore[arg-type]
    )


def log_assessment(payment_id: uuid.UUID, assessment: RiskAssessment) -> None:
    """Feature logging (DEBUG) and shadow scores (INFO); costs two level checks when both are off."""
    if feature_log.isEnabledFor(logging.DEBUG) and assessment.features:
        feature_log.debug("features of %s (score %s by %s): %s", ids.encode(ids.PAYMENT, payment_id),
                          assessment.risk_score, assessment.model,
                          ",".join(f"{x:.6g}" for x in assessment.features))
    if assessment.shadow_scores and shadow_log.isEnabledFor(logging.INFO):
        shadow_log.info("shadow scores of %s: %s (served %s by %s)", ids.encode(ids.PAYMENT, payment_id),
                        ", ".join(f"{model}={score}" for model, score in assessment.shadow_scores),
                        assessment.risk_score, assessment.model)
