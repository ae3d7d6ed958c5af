"""The ingest benchmark's baseline: a Flask endpoint that reads the body and does nothing."""

from flask import Flask, request

app = Flask(__name__)


@app.post("/webhooks/genesys")
def noop():
    request.get_data()
    return {"accepted": 0, "duplicates": 0}
