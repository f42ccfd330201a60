#!/usr/bin/env bash
# Serving against llama.cpp's own Vulkan backend through the same Vulkan driver, on the same GGUF files, in one run:
# prompt and decode tokens/s for each model, printed as a markdown table (the README's table).
#   scripts/bench-vs-llamacpp.sh [--device vulkan:0] [--llama vulkan|cpu] [--prompt-tokens 64] [--decode-tokens 32] MODEL.gguf...
# Default models: /tmp/models/{tiny-f32,tiny-q8_0,1b-q4_0,1b-q8_0}.gguf (those that exist).
# llama.cpp side: bench/llamacpp/bench.mjs (node-llama-cpp's prebuilt build; nothing is compiled here — run
# `npm install --ignore-scripts --omit=optional` in bench/llamacpp once). Its Vulkan backend skips CPU devices such as
# lavapipe unless GGML_VK_VISIBLE_DEVICES names them; bench.mjs sets device 0.
# Serving side: `Serving.Host bench decode` (built here in Release if missing): decode tokens/s from its time per output
# token, prompt tokens/s as prompt tokens ÷ time to first token, with a prompt of about the same token count.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
device=vulkan:0 llama=vulkan prompt_tokens=64 decode_tokens=32 models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --llama) llama=$2; shift 2 ;;
    --prompt-tokens) prompt_tokens=$2; shift 2 ;;
    --decode-tokens) decode_tokens=$2; shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) models+=("$1"); shift ;;
  esac
done
if [ ${#models[@]} = 0 ]; then
  for m in tiny-f32 tiny-q8_0 1b-q4_0 1b-q8_0; do [ -f "/tmp/models/$m.gguf" ] && models+=("/tmp/models/$m.gguf"); done
fi
[ ${#models[@]} -gt 0 ] || { echo "bench-vs-llamacpp: no model files" >&2; exit 2; }
command -v node >/dev/null || { echo "bench-vs-llamacpp: node not found" >&2; exit 2; }
[ -d "$root/bench/llamacpp/node_modules/node-llama-cpp" ] || {
  echo "bench-vs-llamacpp: run 'npm install --ignore-scripts --omit=optional --no-audit --no-fund' in bench/llamacpp first" >&2; exit 2; }
host="$root/src/Host/bin/Release/net10.0/Serving.Host.dll"
[ -f "$host" ] || dotnet build "$root/src/Host" -c Release -warnaserror >&2

# A prompt of roughly prompt_tokens tokens for Serving's tokenizer (common words are about one token each).
words=(the quick brown fox jumps over a lazy dog while birds sing in green trees and rivers run to the sea)
prompt="Once upon a time"
for ((i = 4; i < prompt_tokens; i++)); do prompt+=" ${words[i % ${#words[@]}]}"; done

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
rows=()
for m in "${models[@]}"; do
  name=$(basename "$m" .gguf)
  echo "== $name: llama.cpp ($llama)" >&2
  lj=$( (cd "$root/bench/llamacpp" && timeout 1800 node bench.mjs "$m" "$llama" "$prompt_tokens" "$decode_tokens") 2>"$tmp/llama.err" | tail -1) || lj=""
  [ -n "$lj" ] || { echo "llama.cpp failed on $name:" >&2; tail -5 "$tmp/llama.err" >&2; }
  echo "== $name: Serving ($device)" >&2
  rm -f "$tmp/s.json"
  timeout 1800 dotnet "$host" bench decode --model "$m" --device "$device" --tokens "$decode_tokens" --prompt "$prompt" --json "$tmp/s.json" >&2 \
    || echo "Serving failed on $name" >&2
  sj=$(cat "$tmp/s.json" 2>/dev/null || true)
  rows+=("$(LJ="$lj" SJ="$sj" NAME="$name" node -e '
    const p = s => { try { return s ? JSON.parse(s) : null; } catch { return null; } };
    const l = p(process.env.LJ), s = p(process.env.SJ), f = v => v == null || !isFinite(v) ? "—" : v.toFixed(2);
    const sp = s && s.ttftMs > 0 ? s.promptTokens / (s.ttftMs / 1000) : null;
    const r = (a, b) => a == null || b == null || !isFinite(a) || !isFinite(b) ? "—" : (a / b).toFixed(2) + "×";
    console.log(`| ${process.env.NAME} | ${f(sp)} (${s ? s.promptTokens : "—"} tok) | ${f(l && l.promptTokensPerSecond)} | ${r(sp, l && l.promptTokensPerSecond)} | ${f(s && s.decodeTokensPerSecond)} | ${f(l && l.decodeTokensPerSecond)} | ${r(s && s.decodeTokensPerSecond, l && l.decodeTokensPerSecond)} |`);
  ')")
done
echo
echo "Serving $device vs llama.cpp $llama ($(vulkaninfo --summary 2>/dev/null | sed -n 's/^ *deviceName *= *//p' | head -1 || true)), $(nproc) CPU cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| model | Serving prompt tok/s | llama.cpp prompt tok/s | ratio | Serving decode tok/s | llama.cpp decode tok/s | ratio |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
