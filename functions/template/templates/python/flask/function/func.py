# Function: a Flask app. `skiff func run` serves `app` (exported by function/__init__.py) with
# the standard library's WSGI server; Flask comes from the distribution (Debian's
# python3-flask) or an earlier `pip install flask`, since skiff func does not download from PyPI.
import logging

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/", methods=["GET", "POST"])
def handle():
    """Handle requests to the function (the runner answers /health/readiness and
    /health/liveness). This example echoes its input: a POST's body, a GET's query."""
    logging.info("OK: Request Received")
    if request.method == "POST":
        if request.is_json:
            return jsonify(request.get_json())
        return request.get_data(), 200, {"Content-Type": "text/plain"}
    return jsonify(request.args.to_dict())
