# Function: a FastAPI app. `skiff func run` serves `app` (exported by function/__init__.py) with
# uvicorn; FastAPI and uvicorn come from the distribution (Debian's python3-fastapi and
# python3-uvicorn) or an earlier `pip install fastapi uvicorn`, since skiff func does not
# download from PyPI.
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

app = FastAPI()


@app.get("/")
async def query(request: Request):
    """A GET echoes its query."""
    logging.info("OK: Request Received")
    return dict(request.query_params)


@app.post("/")
async def body(request: Request):
    """A POST echoes its body (the runner answers /health/readiness and /health/liveness)."""
    logging.info("OK: Request Received")
    if request.headers.get("content-type", "").startswith("application/json"):
        return JSONResponse(await request.json())
    return PlainTextResponse(await request.body())
