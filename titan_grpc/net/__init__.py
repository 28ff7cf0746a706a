"""HTTP plumbing shared by the venue adapters; knows no exchange."""

from titan_grpc.net.clock import ClockSync
from titan_grpc.net.ratelimit import RateLimiter, TokenBucketLimiter, WindowRateLimiter
from titan_grpc.net.rest import RestClient, RestRequest, RestResponse
from titan_grpc.net.retry import RetryPolicy

__all__ = [
    "ClockSync",
    "RateLimiter",
    "RestClient",
    "RestRequest",
    "RestResponse",
    "RetryPolicy",
    "TokenBucketLimiter",
    "WindowRateLimiter",
]
