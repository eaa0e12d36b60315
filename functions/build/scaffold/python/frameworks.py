"""Serving a Flask or FastAPI function: the package `function` exports `app`.

wsgi: a WSGI app (Flask) on the standard library's wsgiref server, one thread per request.
uvicorn: an ASGI app (FastAPI) on uvicorn, the server FastAPI's documentation runs it with.
Either way /health/readiness and /health/liveness answer 200 "OK" (Knative's probe paths), and
SIGTERM stops the server."""
import logging
import signal
import socketserver
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

HEALTH = ("/health/readiness", "/health/liveness")


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        logging.info("%s %s", self.address_string(), fmt % args)


def _wsgi_health(app):
    def wrapped(environ, start_response):
        if environ.get("PATH_INFO") in HEALTH:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"OK"]
        return app(environ, start_response)
    return wrapped


def _asgi_health(app):
    async def wrapped(scope, receive, send):
        if scope["type"] == "http" and scope.get("path") in HEALTH:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"OK"})
            return
        await app(scope, receive, send)
    return wrapped


def serve(kind, app, port, host=None):
    """Serve app on host:port. host is $HOST (127.0.0.1 under `skiff up` and `skiff func run`,
    which keeps the function on loopback); None (as in a pod) is every interface."""
    host = host or "0.0.0.0"
    if kind == "wsgi":
        httpd = make_server(host, port, _wsgi_health(app), server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
        stop = threading.Event()

        def on_signal(*_):
            if not stop.is_set():
                stop.set()
                threading.Thread(target=httpd.shutdown, daemon=True).start()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        logging.info("function (WSGI) listening on %s:%d", host, port)
        httpd.serve_forever()
        httpd.server_close()
    elif kind == "uvicorn":
        import uvicorn
        logging.info("function (ASGI, uvicorn) listening on %s:%d", host, port)
        # log_config=None: uvicorn logs through the root logger, once, in the runner's format.
        uvicorn.run(_asgi_health(app), host=host, port=port, log_level="info", log_config=None)
    else:
        sys.exit(f"unknown --server {kind!r}: want asyncio, wsgi or uvicorn")
