"""Verifies a captured webhook with the Standard Webhooks reference library: reads
{"headers": {...}, "body": "..."} on stdin, the secret as argv[1]; exits 0 when it verifies."""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

captured = json.load(sys.stdin)
try:
    Webhook(sys.argv[1]).verify(captured["body"], captured["headers"])
except WebhookVerificationError as e:
    print(f"not verified: {e}", file=sys.stderr)
    sys.exit(1)
print("verified")
