"""Skiff's Python function runner: serves a Knative-style ASGI function (a package `function`
whose new() returns an object with async handle(scope, receive, send)) on $PORT with asyncio
alone, no third-party packages. With --server wsgi or --server uvicorn it serves the package's
`app` instead: a Flask (WSGI) app with the standard library's threaded WSGI server, or a FastAPI
(ASGI) app with uvicorn (frameworks.py).
Usage: python3 main.py FUNCTION_DIR [--invoke cloudevent] [--server asyncio|wsgi|uvicorn]"""
import asyncio
import inspect
import logging
import os
import signal
import sys

import skiff_cloudevents

MAX_BODY = 64 << 20


class HTTPError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


REASONS = {200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 500: "Internal Server Error",
           503: "Service Unavailable"}


class Server:
    def __init__(self, instance, cloudevents):
        self.instance = instance
        self.cloudevents = cloudevents

    async def connection(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                try:
                    method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
                except ValueError:
                    await self.write(writer, 400, [], b"malformed request line", False)
                    return
                headers = []
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.decode("latin-1").partition(":")
                    headers.append((name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
                hd = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
                body = await self.read_body(reader, hd)
                keep = version == "HTTP/1.1" and hd.get("connection", "").lower() != "close"
                status, rh, rb = await self.respond(method, target, version, headers, hd, body, writer)
                await self.write(writer, status, rh, rb, keep)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except HTTPError as e:
            await self.write(writer, e.status, [], str(e).encode(), False)
        finally:
            writer.close()

    async def read_body(self, reader, hd):
        if "chunked" in hd.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += await reader.readexactly(size)
                await reader.readline()
                if len(body) > MAX_BODY:
                    raise HTTPError(413, "body too large")
        n = int(hd.get("content-length", "0") or 0)
        if n > MAX_BODY:
            raise HTTPError(413, "body too large")
        return await reader.readexactly(n) if n else b""

    async def respond(self, method, target, version, headers, hd, body, writer):
        path, _, query = target.partition("?")
        if path in ("/health/readiness", "/health/liveness"):
            check = getattr(self.instance, "ready" if path.endswith("readiness") else "alive", None)
            ok, msg = True, "OK"
            if check is not None:
                result = check()
                if inspect.isawaitable(result):
                    result = await result
                ok, msg = result if isinstance(result, tuple) else (bool(result), "")
            return (200 if ok else 503), [(b"content-type", b"text/plain")], str(msg).encode()
        peer = writer.get_extra_info("peername") or ("", 0)
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": version.split("/", 1)[-1], "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": query.encode(),
            "root_path": "", "headers": headers, "client": peer[:2],
            "server": ("127.0.0.1", int(os.environ.get("PORT", "8080"))),
        }
        response = {"status": 500, "headers": [], "body": b""}

        async def send(message):
            if hasattr(message, "get_attributes"):
                response["status"] = 200
                response["headers"], response["body"] = skiff_cloudevents.to_structured(message)
                return
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                response["headers"] = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                response["body"] += message.get("body", b"")

        async def send_binary(event):
            response["status"] = 200
            response["headers"], response["body"] = skiff_cloudevents.to_binary(event)

        send.binary = send_binary
        delivered = False

        async def receive():
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        if self.cloudevents:
            try:
                scope["event"] = skiff_cloudevents.from_http(hd, body)
            except ValueError as e:
                return 400, [(b"content-type", b"text/plain")], str(e).encode()
        try:
            await self.instance.handle(scope, receive, send)
        except Exception as e:  # the function failed: 500 with its message, as Knative does
            logging.exception("function failed")
            return 500, [(b"content-type", b"text/plain")], str(e).encode()
        return response["status"], response["headers"], response["body"]

    async def write(self, writer, status, headers, body, keep):
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}".encode()]
        for k, v in headers:
            if k.lower() not in (b"content-length", b"connection", b"transfer-encoding"):
                lines.append(k + b": " + v)
        lines.append(b"content-length: " + str(len(body)).encode())
        lines.append(b"connection: " + (b"keep-alive" if keep else b"close"))
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()


async def serve(instance, cloudevents):
    port = int(os.environ.get("PORT", "8080"))
    # $HOST (127.0.0.1 under `skiff up` and `skiff func run`) keeps the function on loopback;
    # unset (as in a pod) it listens on every interface.
    host = os.environ.get("HOST") or None
    server = await asyncio.start_server(Server(instance, cloudevents).connection, host=host, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logging.info("function listening on %s:%d", host or "", port)
    async with server:
        await stop.wait()
    if hasattr(instance, "stop"):
        result = instance.stop()
        if inspect.isawaitable(result):
            await result


def main():
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
    args = sys.argv[1:]
    cloudevents = False
    if "--invoke" in args:
        i = args.index("--invoke")
        cloudevents = args[i + 1] == "cloudevent"
        del args[i:i + 2]
    server = "asyncio"
    if "--server" in args:
        i = args.index("--server")
        server = args[i + 1]
        del args[i:i + 2]
    src = os.path.abspath(args[0] if args else ".")
    sys.path.insert(0, src)
    os.chdir(src)
    import function  # the user's package, from src
    if server != "asyncio":
        import frameworks
        frameworks.serve(server, function.app, int(os.environ.get("PORT", "8080")), os.environ.get("HOST") or None)
        return
    instance = function.new()
    if hasattr(instance, "start"):
        instance.start(dict(os.environ))
    asyncio.run(serve(instance, cloudevents))


if __name__ == "__main__":
    main()
