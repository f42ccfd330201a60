#!/usr/bin/env bash
# Compiles the Vulkan backend's GLSL compute shaders (backends/Vulkan/Shaders/*.comp, one op per file) to SPIR-V with
# glslc, next to each source: <op>.comp -> <op>.spv. A shader that has an "#ifdef SUBGROUP" block is compiled a second
# time with -DSUBGROUP to <op>.subgroup.spv (the subgroup-arithmetic variant: its SPIR-V declares capabilities a
# device without subgroup arithmetic must never see, so it is a separate module). The .spv files are committed, so a
# fresh clone builds with the .NET SDK alone; run this after editing a shader (the Vulkan tests compare them).
#   scripts/build-shaders.sh            compile every shader
#   scripts/build-shaders.sh --check    compile into a temporary folder and fail if any committed .spv differs
# SPIR-V bytes depend on the compiler's version: Shaders/GLSLC_VERSION records the one that built the committed files,
# and --check exits 3 (not 1) when a different glslc is installed, since its output may differ without any shader change.
set -euo pipefail
cd "$(dirname "$0")/../backends/Vulkan/Shaders"
command -v glslc >/dev/null || { echo "build-shaders: glslc not found (Debian: apt-get install glslc)" >&2; exit 2; }
out=.
check=0
if [ "${1:-}" = "--check" ]; then check=1; out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
version=$(glslc --version | sed -n 1p)
if [ $check = 1 ] && [ "$version" != "$(cat GLSLC_VERSION 2>/dev/null)" ]; then
  echo "build-shaders: installed glslc is '$version', the committed .spv were built by '$(cat GLSLC_VERSION 2>/dev/null)'" >&2
  exit 3
fi
flags=(--target-env=vulkan1.1 -O -x glsl -fshader-stage=compute)
status=0
for src in *.comp; do
  name=${src%.comp}
  targets=("$name.spv:")
  if grep -q '^#ifdef SUBGROUP' "$src"; then targets+=("$name.subgroup.spv:-DSUBGROUP=1"); fi
  for t in "${targets[@]}"; do
    spv=${t%%:*}; def=${t#*:}
    glslc "${flags[@]}" ${def:+"$def"} -o "$out/$spv" "$src"
    if [ $check = 1 ] && ! cmp -s "$out/$spv" "$spv"; then echo "build-shaders: $spv is out of date with $src" >&2; status=1; fi
  done
done
[ $check = 1 ] || echo "$version" > GLSLC_VERSION
exit $status
