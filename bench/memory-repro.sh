#!/usr/bin/env bash
# Memory-based learners (issue #5): the NTM on the copy task and the LRU MANN on Omniglot label-delay
# episodes, one budget-limited run each on this 2-core machine. Not part of CI. Usage:
#   bash bench/memory-repro.sh [DATA_DIR] [NAME ...]     # default data ../shared/data/omniglot, all runs
# Each run writes runs/repro/NAME/ and copies its report (config, learning curve, final figures) to
# bench/results/memory/NAME.json (the NTM also its picture of a copied sequence of length 20);
# bench/REPRODUCTIONS.md tabulates them (node dist/bench/reproductions.js).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/omniglot}
shift || true

# name | arguments (ntm-copy-2 continues ntm-copy from its checkpoint)
RUNS=(
  "ntm-copy|--algorithm ntm --minutes 15 --eval-every 200"
  "ntm-copy-2|--algorithm ntm --minutes 18 --eval-every 200 --init-from runs/repro/ntm-copy/checkpoint.safetensors"
  "ntm-copy-long|--algorithm ntm --minutes 35 --eval-every 500"
  "mann-omniglot|--algorithm mann --data $DATA --iterations 6250 --minutes 90 --eval-every 500"
  "mann-omniglot-ks-ln2|--algorithm mann --data $DATA --minutes 20 --eval-every 500 --key-strength 0.6931471805599453 --eval-tasks 600"
  "mann-omniglot-write-key|--algorithm mann --data $DATA --minutes 20 --eval-every 500 --write-key --eval-tasks 600"
)

npm run build --silent
mkdir -p bench/results/memory runs/repro
for entry in "${RUNS[@]}"; do
  name=${entry%%|*}; argv=${entry#*|}
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  echo "== $name: node dist/cli/main.js $argv"
  # shellcheck disable=SC2086
  node dist/cli/main.js $argv --out "runs/repro/$name" --force 2>&1 | tee "runs/repro/$name.log"
  cp "runs/repro/$name/report.json" "bench/results/memory/$name.json"
  if [ -f "runs/repro/$name/copy-20.svg" ]; then cp "runs/repro/$name/copy-20.svg" "bench/results/memory/$name-copy-20.svg"; fi
done
