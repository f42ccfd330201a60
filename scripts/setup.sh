#!/usr/bin/env bash
# Installs what the tests need beyond the .NET SDK, on a fresh machine: Debian's python3-msgpack (the Python
# interop client) and gcc (the native-library test plugin's C library), npm's @msgpack/msgpack (the Node interop
# client) and npm's node-llama-cpp with its prebuilt linux-x64 CPU build of llama.cpp (tests/llamacpp: llama.cpp
# loads and scores the files Serving writes; ~85 MB; the optional GPU builds are left out and its postinstall, which
# would look for them, is not run), and for the Vulkan backend's tests Debian's libvulkan1 (the loader),
# mesa-vulkan-drivers (lavapipe, Mesa's Vulkan driver on the CPU), vulkan-validationlayers (the Khronos validation
# layer the conformance suite runs under) and glslc (recompiles the shaders to check the committed SPIR-V), and
# Debian's chromium, in which the bench tests open report.html headless (every chart drawn, no console message).
# Idempotent and quiet when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# The system interpreter: Debian's python3-msgpack installs for it only (a pyenv python3 may come first on PATH).
/usr/bin/python3 -c 'import msgpack' 2>/dev/null || need_apt+=(python3-msgpack)
# A C compiler: the native-library test plugin (tests/TestPlugins/NativeLibrary) builds its small shared library.
command -v gcc >/dev/null || need_apt+=(gcc)
# Vulkan: the loader, lavapipe's ICD, the validation layer's manifest, the shader compiler.
{ ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; } || need_apt+=(libvulkan1)
ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
[ -f /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json ] || need_apt+=(vulkan-validationlayers)
command -v glslc >/dev/null || need_apt+=(glslc)
# A headless browser for the bench report's test (tests/Serving.Host.Tests/Bench).
{ command -v chromium >/dev/null || command -v chromium-browser >/dev/null; } || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${need_apt[*]} (apt)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing ${need_apt[*]} and cannot apt-get install (not root); the tests that need it will fail" >&2
  fi
fi

if [ -f clients/node/package.json ] && command -v npm >/dev/null && [ ! -d clients/node/node_modules/@msgpack ]; then
  echo "setup: npm install in clients/node"
  (cd clients/node && npm install --no-audit --no-fund --silent)
fi

if [ -f tests/llamacpp/package.json ] && command -v npm >/dev/null && [ ! -d tests/llamacpp/node_modules/@node-llama-cpp/linux-x64 ]; then
  echo "setup: npm install in tests/llamacpp (node-llama-cpp, llama.cpp's prebuilt CPU build)"
  (cd tests/llamacpp && npm install --omit=optional --ignore-scripts --no-audit --no-fund --silent)
fi
