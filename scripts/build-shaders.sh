#!/usr/bin/env bash
# Compiles the Vulkan backend's GLSL compute shaders (backends/Vulkan/Shaders/*.comp, one op per file) to SPIR-V with
# glslc, next to each source: <op>.comp -> <op>.spv. Builds that use an optional device feature are separate modules
# (their SPIR-V declares capabilities a device without the feature must never see): a shader lists them on one line
#     // builds: SUBGROUP INT_DOT SUBGROUP+INT_DOT
# and each entry is compiled again with those macros defined, to <op>.<macros in lower case, joined by '.'>.spv
# (SUBGROUP+INT_DOT -> <op>.subgroup.int_dot.spv). A shader without that line but with an "#ifdef SUBGROUP" block
# gets the one extra build <op>.subgroup.spv. The .spv files are committed, so a
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
  builds=$(sed -n 's|^// builds: *||p' "$src" | head -1)
  if [ -z "$builds" ] && grep -q '^#ifdef SUBGROUP' "$src"; then builds=SUBGROUP; fi
  for b in $builds; do
    suffix=$(echo "$b" | tr '[:upper:]' '[:lower:]' | tr '+' '.')
    targets+=("$name.$suffix.spv:$(echo "$b" | sed 's/^/-D/; s/+/=1 -D/g; s/$/=1/')")
  done
  for t in "${targets[@]}"; do
    spv=${t%%:*}; defs=${t#*:}
    # shellcheck disable=SC2086  # defs is a list of -D flags
    glslc "${flags[@]}" $defs -o "$out/$spv" "$src"
    if [ $check = 1 ] && ! cmp -s "$out/$spv" "$spv"; then echo "build-shaders: $spv is out of date with $src" >&2; status=1; fi
  done
done
[ $check = 1 ] || echo "$version" > GLSLC_VERSION
exit $status
