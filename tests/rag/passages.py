"""Passages the reranking tests score: three about API rate limits, three about nothing of the kind."""

TEXTS = [
    "Rate limits are set in config/api.yaml under the key rate_limit.",
    "Bananas are yellow and rich in potassium.",
    "The API allows 100 requests per minute per key; raise it with rate_limit.per_minute.",
    "Paris is the capital of France.",
    "Retries use exponential backoff starting at 0.5 seconds.",
    "Our office is closed on public holidays.",
]
