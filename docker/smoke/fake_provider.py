#!/usr/bin/env python3
"""A fake OpenAI-compatible upstream for the image smoke test (python3 standard library only).

POST .../chat/completions answers a non-streaming chat completion with a fixed usage block (12 prompt tokens,
5 completion tokens). A request whose last message contains "[slow]" is answered after SLOW_SECONDS, to hold a
request in flight while the container is told to stop. Every request is appended to the JSON-lines file given
as the second argument (method, path, model, slow, the Authorization header it carried), so the test can check
what the gateway sent upstream. Usage: fake_provider.py PORT_FILE REQUEST_LOG [BIND_ADDRESS]; the chosen port is written
to PORT_FILE once the socket listens.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_SECONDS = 3.0
PROMPT_TOKENS = 12
COMPLETION_TOKENS = 5

port_file, request_log = sys.argv[1], sys.argv[2]
bind_address = sys.argv[3] if len(sys.argv) > 3 else "0.0.0.0"
log_lock = threading.Lock()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        model = str(body.get("model", ""))
        messages = body.get("messages") or [{}]
        slow = "[slow]" in str(messages[-1].get("content", ""))
        with log_lock, open(request_log, "a") as log:
            log.write(json.dumps({
                "method": "POST",
                "path": self.path,
                "model": model,
                "slow": slow,
                "authorization": self.headers.get("Authorization", ""),
                "received_at": time.time(),
            }) + "\n")
        if not self.path.endswith("/chat/completions"):
            self.reply(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        if slow:
            time.sleep(SLOW_SECONDS)
        self.reply(200, {
            "id": "chatcmpl-smoke",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "pong"},
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            },
        })

    def reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

server = ThreadingHTTPServer((bind_address, 0), Handler)
server.daemon_threads = True
# Written then renamed into place, so that a reader never sees a half-written port.
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.replace(port_file + ".tmp", port_file)
server.serve_forever()
