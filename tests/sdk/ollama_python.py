"""Drives the bridge's native /api/* passthrough with Ollama's own Python client.

Usage: python ollama_python.py HOST MODEL
Prints one JSON object describing what the client returned; the Rust test checks it.
"""

import json
import sys

import ollama


def main(host: str, model: str) -> dict:
    client = ollama.Client(host=host)
    chunks = [
        chunk.model_dump(mode="json", exclude_none=True)
        for chunk in client.chat(model=model, messages=[{"role": "user", "content": "hi"}], stream=True)
    ]
    listed = client.list()
    return {"chunks": chunks, "models": sorted(m.model for m in listed.models)}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
