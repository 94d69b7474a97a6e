"""A fake OpenAI-compatible chat server on 127.0.0.1 for the LLM writer's tests: it returns scripted
completions (whole or streamed as server-sent events), scripted HTTP errors and delays, and records
every request it was sent."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    content: str = ""
    status: int = 200
    delay: float = 0.0  # seconds before the reply starts


class FakeOpenAI:
    def __init__(self):
        self.replies: list[Reply] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                try:
                    self._answer()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

            def _answer(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                reply = server.replies.pop(0) if server.replies else Reply(status=500)
                time.sleep(reply.delay)
                if reply.status != 200:
                    self.send_response(reply.status)
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "scripted failure"}}')
                    return
                if body.get("stream"):
                    self._stream(reply.content)
                else:
                    self._whole(reply.content)

            def _whole(self, content: str):
                data = json.dumps({"id": "x", "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, content: str):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for i in range(0, len(content), 17):  # pieces that cut words and JSON strings in half
                    chunk = {"choices": [{"index": 0, "delta": {"content": content[i:i + 17]}}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def log_message(self, *args):  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def script(self, *replies: Reply | str) -> None:
        self.replies = [r if isinstance(r, Reply) else Reply(r) for r in replies]


def completion(bottom_line: str, answer: list[str]) -> str:
    return json.dumps({"bottom_line": bottom_line, "answer": answer})
