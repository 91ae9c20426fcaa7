"""paysvc-client: the Python client of the paysvc payment API (sync and async).

    from paysvc_client import Client
    with Client("sk_…", base_url="http://127.0.0.1:8000") as client:
        payment = client.payments.create(amount=1000, currency="USD", source=a, destination=b)
"""

from paysvc_client import types
from paysvc_client._async import AsyncClient, AsyncPage
from paysvc_client._core import DEFAULT_BASE_URL, VERSION, decode_event
from paysvc_client._sync import Client, Page
from paysvc_client.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    IdempotencyError,
    InvalidRequestError,
    PaymentError,
    PaysvcError,
    RateLimitError,
    WebhookVerificationError,
)
from paysvc_client.types import (
    Account,
    BatchItem,
    Entry,
    Event,
    FeeRuleParams,
    FeeSchedule,
    Payment,
    PaymentParams,
    Refund,
    Review,
    RiskRuleParams,
    RiskSettings,
    Tenant,
    WebhookDelivery,
    WebhookEndpoint,
)
from paysvc_client.webhooks import Webhook

__version__ = VERSION

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIError",
    "Account",
    "AsyncClient",
    "AsyncPage",
    "AuthenticationError",
    "BatchItem",
    "Client",
    "Entry",
    "Event",
    "FeeRuleParams",
    "FeeSchedule",
    "IdempotencyError",
    "InvalidRequestError",
    "Page",
    "Payment",
    "PaymentError",
    "PaymentParams",
    "PaysvcError",
    "RateLimitError",
    "Refund",
    "Review",
    "RiskRuleParams",
    "RiskSettings",
    "Tenant",
    "Webhook",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookVerificationError",
    "decode_event",
    "types",
]
