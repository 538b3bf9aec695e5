#!/usr/bin/env bash
# The whole pipeline on the small world in about a minute: world -> retriever -> index -> baseline -> eval.
set -euo pipefail
out=${1:-runs/smoke}
bin=.venv/bin
$bin/videosearch world generate --out "$out/world" --size small
$bin/videosearch retriever train --config configs/mini.yaml --world "$out/world" --out "$out/retriever" -o epochs=2
$bin/videosearch index build --videos "$out/world/videos/test" --embedder "$out/retriever" --out "$out/index"
$bin/videosearch baseline run "$out/index" --annotations "$out/world/test.jsonl" --out "$out/baseline.jsonl"
$bin/videosearch eval --pred "$out/baseline.jsonl" --annotations "$out/world/test.jsonl"
