"""HTTP/JSON transcoding of the gRPC service (google.api.http annotations), in-process.

The servicer knows nothing of HTTP: this package calls its methods with an
HttpServicerContext. Wired in by server.py when TITAN_HTTP_ADDRESS is set.
"""

from titan_grpc.http.server import HttpServer, server_ssl_context, start_http_server
from titan_grpc.http.transcoder import build_app, http_status

__all__ = ["HttpServer", "build_app", "http_status", "server_ssl_context", "start_http_server"]
