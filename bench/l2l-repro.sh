#!/usr/bin/env bash
# Learned optimisers (issue #21): the coordinatewise LSTM of Andrychowicz et al. 2016 trained on
# random quadratics and on an MNIST MLP, then run on held-out optimizees beside SGD, NAG, RMSprop and
# Adam with learning rates tuned on training optimizees. Not part of CI. Usage:
#   bash bench/l2l-repro.sh [MNIST_DIR] [NAME ...]     # default ../shared/data/mnist, all runs
# Each run writes runs/repro/NAME/ and copies its report (config, learning curve, the loss curves of
# the LSTM and the baselines) and its loss-curves.svg to bench/results/l2l/; bench/REPRODUCTIONS.md
# tabulates them (node dist/bench/reproductions.js).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/mnist}
shift || true

# name | arguments (100 held-out optimizees each; one iteration = one optimiser update = 20 steps)
RUNS=(
  # 128 random 10-d quadratics at once, W and y ~ U[0, 1) (the reference code's draw), no
  # preprocessing, output scale 1 (the reference code's quadratic settings)
  "l2l-quadratic|--algorithm l2l --optimizee quadratic --iterations 2000 --eval-every 250 --checkpoint-every 100"
  # MNIST, one hidden layer of 20 sigmoid units, batch 128, 100 steps; preprocessing p = 10 and output
  # scale 0.1 (the paper's); held-out runs on the test images, continued to 200 steps
  "l2l-mnist|--algorithm l2l --optimizee mnist-mlp --data $DATA --iterations 500 --minutes 45 --eval-steps 200 --eval-every 100 --checkpoint-every 25"
  # The optimiser trained in l2l-mnist, run without further training (--iterations 0) on other nets
  # (the paper's Figure 5): 40 hidden units, two hidden layers, ReLU instead of sigmoid; 30 held-out
  # optimizees each
  "l2l-mnist-40|--algorithm l2l --optimizee mnist-mlp --data $DATA --hidden 40 --iterations 0 --init-from runs/repro/l2l-mnist/checkpoint.safetensors --eval-tasks 30"
  "l2l-mnist-2layers|--algorithm l2l --optimizee mnist-mlp --data $DATA --layers 2 --iterations 0 --init-from runs/repro/l2l-mnist/checkpoint.safetensors --eval-tasks 30"
  "l2l-mnist-relu|--algorithm l2l --optimizee mnist-mlp --data $DATA --activation relu --iterations 0 --init-from runs/repro/l2l-mnist/checkpoint.safetensors --eval-tasks 30"
  # The same optimiser on Fashion-MNIST, a transfer the paper did not test
  "l2l-fashion|--algorithm l2l --optimizee mnist-mlp --images fashion-mnist --data /usr/share/datasets/fashion-mnist --iterations 0 --init-from runs/repro/l2l-mnist/checkpoint.safetensors --eval-tasks 30"
  # The conv/fc split on a small MNIST CNN (the paper's CIFAR-10 figure; a substitute): one LSTM for
  # all parameters, and one for the convolutions and another for the fully connected layers
  "l2l-cnn|--algorithm l2l --optimizee mnist-cnn --data $DATA --iterations 300 --minutes 30 --eval-every 100 --checkpoint-every 25"
  "l2l-cnn-split|--algorithm l2l --optimizee mnist-cnn --split-lstm --data $DATA --iterations 300 --minutes 30 --eval-every 100 --checkpoint-every 25"
)

npm run build --silent
mkdir -p bench/results/l2l runs/repro
for entry in "${RUNS[@]}"; do
  name=${entry%%|*}; argv=${entry#*|}
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  echo "== $name: node dist/cli/main.js $argv"
  # shellcheck disable=SC2086
  node dist/cli/main.js $argv --out "runs/repro/$name" --force 2>&1 | tee "runs/repro/$name.log"
  cp "runs/repro/$name/report.json" "bench/results/l2l/$name.json"
  cp "runs/repro/$name/loss-curves.svg" "bench/results/l2l/$name.svg"
done
