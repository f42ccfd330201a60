#!/usr/bin/env bash
# The Cuda backend's checks on a real NVIDIA GPU (backends/Cuda/README.md, "On a GPU").
#
#   bash scripts/cuda-gpu-check.sh prepare [DIR]     on a machine with the .NET SDK (the build machine): publishes the
#                                                    host with its plugins, builds the conformance suite and packs this
#                                                    machine's .NET runtime into DIR (default .device, git-ignored)
#   bash scripts/cuda-gpu-check.sh run [DIR] [OUT]   on the GPU machine, which needs only the NVIDIA driver: unpacks
#                                                    the runtime, then runs the conformance suite on cuda:0, bench
#                                                    bandwidth, and for each shape and type generate + bench decode
#                                                    with --device cuda:0; logs and JSON results go to OUT (default
#                                                    $OUT, else DIR/out)
#
# Environment for run: SHAPES (default "1b 8b"), TYPES (default "q4_0 q8_0"), TOKENS (bench decode tokens, default 64),
# SKIP_CONFORMANCE=1 to skip the suite. Models are synthetic (models create, seeded), written on the GPU machine under
# DIR/models, so nothing large travels. Writes OUT/log.txt (everything), OUT/conformance.txt, OUT/decode-<shape>-<type>.json
# and OUT/summary.txt (tokens/s, floor, % of floor, J/token): at most 7 files.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cmd=${1:-}
dir=${2:-.device}

prepare() {
  set -e
  cd "$here"
  rm -rf "$dir/app" "$dir/conformance"
  mkdir -p "$dir"
  dotnet publish src/Host/Serving.Host.csproj -c Release -o "$dir/app" -nologo -v quiet
  dotnet build tests/Serving.Conformance.Tests/Serving.Conformance.Tests.csproj -c Release -nologo -v quiet
  # The suite with the Cuda plugin alone (the other backends are not what the GPU machine checks, and the carry is small).
  cp -r tests/Serving.Conformance.Tests/bin/Release/net10.0 "$dir/conformance"
  find "$dir/conformance/plugins" -mindepth 1 -maxdepth 1 ! -name Serving.Backends.Cuda -exec rm -rf {} +
  # The runtime the framework-dependent builds need: dotnet, hostfxr and Microsoft.NETCore.App, as installed here.
  root=$(dirname "$(readlink -f "$(command -v dotnet)")")
  runtime=$(ls -d "$root"/shared/Microsoft.NETCore.App/*/ | sort -V | tail -n 1)
  tar -C "$root" -cf - dotnet host/fxr "shared/Microsoft.NETCore.App/$(basename "$runtime")" | xz -T0 -6 >"$dir/dotnet-runtime.tar.xz"
  du -sh "$dir/app" "$dir/conformance" "$dir/dotnet-runtime.tar.xz"
  echo "prepared $dir: carry it to the GPU machine and run: bash scripts/cuda-gpu-check.sh run $dir"
}

run() {
  cd "$here"
  out=${3:-${OUT:-$dir/out}}
  mkdir -p "$out" "$dir/models"
  if ! command -v dotnet >/dev/null; then
    mkdir -p /opt/dotnet && tar -xJf "$dir/dotnet-runtime.tar.xz" -C /opt/dotnet
    export DOTNET_ROOT=/opt/dotnet PATH=/opt/dotnet:$PATH
  fi
  export DOTNET_CLI_TELEMETRY_OPTOUT=1 SERVING_CUDA_TEST_DEVICE=${SERVING_CUDA_TEST_DEVICE:-gpu}
  host=(dotnet "$dir/app/Serving.Host.dll")
  status=0
  # Few files (the device tool brings back at most 8): everything in log.txt, the suite in conformance.txt, one JSON
  # per model, and summary.txt.
  log="$out/log.txt"
  : >"$log"
  { nvidia-smi || true; } >>"$log" 2>&1
  "${host[@]}" devices 2>&1 | tee -a "$log"
  if [ "${SKIP_CONFORMANCE:-0}" != 1 ]; then
    (cd "$dir/conformance" && timeout 900 dotnet exec Serving.Conformance.Tests.dll suite CudaConformance) 2>&1 | tee "$out/conformance.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  fi
  "${host[@]}" bench bandwidth --device cuda:0 2>&1 | tee -a "$log"
  printf '%-14s %12s %12s %10s %10s\n' model "decode tok/s" "floor tok/s" "of floor" "J/token" >"$out/summary.txt"
  for shape in ${SHAPES:-1b 8b}; do
    for type in ${TYPES:-q4_0 q8_0}; do
      model="$dir/models/$shape-$type.gguf"
      echo "== $shape $type" | tee -a "$log"
      [ -f "$model" ] || "${host[@]}" models create --shape "$shape" --type "$type" -o "$model" 2>&1 | tail -n 1 | tee -a "$log"
      "${host[@]}" generate --model "$model" --device cuda:0 --prompt "Once upon a time" --max-tokens 32 --temperature 0 2>&1 | tee -a "$log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      "${host[@]}" bench decode --model "$model" --device cuda:0 --tokens "${TOKENS:-64}" --json "$out/decode-$shape-$type.json" 2>&1 | tee -a "$log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      if [ -f "$out/decode-$shape-$type.json" ]; then
        python3 - "$out/decode-$shape-$type.json" "$shape-$type" >>"$out/summary.txt" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
j = r.get("joulesPerToken")
print(f"{sys.argv[2]:<14} {r['decodeTokensPerSecond']:>12.1f} {r['floorTokensPerSecond']:>12.1f} {100 * r['fractionOfFloor']:>9.0f}% {('%.3f' % j) if j is not None else 'n/a':>10}")
PY
      fi
    done
  done
  cat "$out/summary.txt"
  return $status
}

case $cmd in
  prepare) prepare ;;
  run) run "$@" ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
