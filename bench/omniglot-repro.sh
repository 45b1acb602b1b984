#!/usr/bin/env bash
# Omniglot reproductions (issues #4 and #5): one training run after another, single-threaded unless the run
# says --threads (results are bit-identical on any thread count), at a budget this 2-core machine can afford, each followed by 600 held-out test tasks (mean ± 95% CI).
# Not part of CI. Usage:
#   bash bench/omniglot-repro.sh [DATA_DIR] [NAME ...]     # default data ../shared/data/omniglot, all runs
# Each run writes runs/repro/NAME/ (checkpoint, log) and copies its report (config, training time,
# learning curve with held-out accuracy, final accuracy) to bench/results/omniglot/NAME.json.
# bench/REPRODUCTIONS.md tabulates the results.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/omniglot}
shift || true

# name | arguments (Vinyals split unless the run says otherwise; gradient-based learners are evaluated
# after 3 inner steps, Reptile after 10; 600 test tasks; 15 queries per class, 5 at 20 ways). Reptile's inner steps take mini-batches of
# the task's support and query examples, as Nichol et al.'s Omniglot runs do (inner batch 10 for
# 5 ways with 5 steps, 20 for 20 ways with 10 steps).
RUNS=(
  # MAML family (issue #4): Conv4 with --ways outputs, so each setting is its own run
  "maml-5w1s|--algorithm maml --ways 5 --shots 1 --meta-batch 8 --iterations 600 --inner-lr 0.1 --eval-every 100"
  "fomaml-5w1s|--algorithm fomaml --ways 5 --shots 1 --meta-batch 8 --iterations 600 --inner-lr 0.1 --eval-every 100"
  "metasgd-5w1s|--algorithm metasgd --ways 5 --shots 1 --meta-batch 8 --iterations 600 --inner-lr 0.1 --eval-every 100"
  "reptile-5w1s|--algorithm reptile --ways 5 --shots 1 --meta-batch 5 --iterations 1500 --inner-lr 0.1 --inner-steps 5 --inner-batch 10 --test-steps 10 --eval-every 250"
  "maml-5w5s|--algorithm maml --ways 5 --shots 5 --meta-batch 8 --iterations 600 --inner-lr 0.1 --eval-every 100"
  "fomaml-5w5s|--algorithm fomaml --ways 5 --shots 5 --meta-batch 8 --iterations 600 --inner-lr 0.1 --eval-every 100"
  "metasgd-5w5s|--algorithm metasgd --ways 5 --shots 5 --meta-batch 8 --iterations 600 --inner-lr 0.1 --eval-every 100"
  "reptile-5w5s|--algorithm reptile --ways 5 --shots 5 --meta-batch 5 --iterations 1500 --inner-lr 0.1 --inner-steps 5 --inner-batch 10 --test-steps 10 --eval-every 250"
  "maml-20w1s|--algorithm maml --ways 20 --shots 1 --queries 5 --meta-batch 4 --iterations 600 --inner-lr 0.1 --eval-every 100"
  "fomaml-20w1s|--algorithm fomaml --ways 20 --shots 1 --queries 5 --meta-batch 4 --iterations 600 --inner-lr 0.1 --eval-every 100"
  "metasgd-20w1s|--algorithm metasgd --ways 20 --shots 1 --queries 5 --meta-batch 4 --iterations 600 --inner-lr 0.1 --eval-every 100"
  # iMAML (issue #20): the implicit meta-gradient, 16 inner gradient steps on the proximal problem
  # (lambda 2), 5 CG steps, as Rajeswaran et al.'s Omniglot runs
  "imaml-5w1s|--algorithm imaml --ways 5 --shots 1 --meta-batch 8 --iterations 500 --inner-lr 0.1 --eval-every 100 --checkpoint-every 50"
  # with the reference code's step sizes (inner 0.01, outer 0.01) and lambda 1
  "imaml-5w1s-ref-lr|--algorithm imaml --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.01 --meta-lr 0.01 --lam 1 --eval-every 100 --checkpoint-every 50"
  # The "Meta-Learning that Memorizes" experiments (issue #20), on MAML's own stride-2 network at
  # 300 meta-steps of 8 tasks. The plain run is also coefficient 0 of (c) and 1 group of (d).
  "maml-5w1s-stride|--algorithm maml --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.1 --downsample stride --eval-every 25 --checkpoint-every 50"
  # (c) Hessian regularisation: coefficient times a 1-probe Hutchinson estimate of each task's ||H||_F^2
  "hreg-1e-4|--algorithm maml --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.1 --downsample stride --eval-every 25 --checkpoint-every 50 --hessian-reg 1e-4"
  "hreg-1e-3|--algorithm maml --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.1 --downsample stride --eval-every 25 --checkpoint-every 50 --hessian-reg 1e-3"
  "hreg-1e-2|--algorithm maml --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.1 --downsample stride --eval-every 25 --checkpoint-every 50 --hessian-reg 1e-2"
  # (d) Meta-PCGrad: the 8 tasks in 2, 4 or 8 groups
  "pcgrad-2|--algorithm maml --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.1 --downsample stride --eval-every 25 --checkpoint-every 50 --pcgrad-groups 2"
  "pcgrad-4|--algorithm maml --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.1 --downsample stride --eval-every 25 --checkpoint-every 50 --pcgrad-groups 4"
  "pcgrad-8|--algorithm maml --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.1 --downsample stride --eval-every 25 --checkpoint-every 50 --pcgrad-groups 8"
  # (a) validation noise: MAML at the reference's inner rate 0.4 against learned per-layer-per-step
  # rates started at 0.04, three seeds each, held-out accuracy every 15 meta-steps
  "noise-maml-s0|--algorithm maml --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.4 --downsample stride --eval-every 15 --checkpoint-every 50 --seed 0"
  "noise-lslr-s0|--algorithm lslr --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.04 --downsample stride --eval-every 15 --checkpoint-every 50 --seed 0"
  "noise-maml-s1|--algorithm maml --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.4 --downsample stride --eval-every 15 --checkpoint-every 50 --seed 1"
  "noise-lslr-s1|--algorithm lslr --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.04 --downsample stride --eval-every 15 --checkpoint-every 50 --seed 1"
  "noise-maml-s2|--algorithm maml --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.4 --downsample stride --eval-every 15 --checkpoint-every 50 --seed 2"
  "noise-lslr-s2|--algorithm lslr --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.04 --downsample stride --eval-every 15 --checkpoint-every 50 --seed 2"
  # (b) two task families in sequence: the first 15 background alphabets, then the other 15 from
  # where that run stopped, each scored on both families' held-out characters; with and without
  # Meta-PCGrad in the second phase
  "seq-a|--algorithm maml --split family-a --also-test family-b --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.1 --downsample stride --eval-every 25 --checkpoint-every 50"
  "seq-b|--algorithm maml --split family-b --also-test family-a --init-from runs/repro/seq-a/checkpoint.safetensors --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.1 --downsample stride --eval-every 25 --checkpoint-every 50"
  "seq-b-pcgrad|--algorithm maml --split family-b --also-test family-a --init-from runs/repro/seq-a/checkpoint.safetensors --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.1 --downsample stride --eval-every 25 --checkpoint-every 50 --pcgrad-groups 4"
  # iMAML on the reference code's own terms: its variant (SGD, then one proximal step; damped CG
  # operator), step sizes and stride-2 network
  "imaml-5w1s-stride-ref|--algorithm imaml --imaml-variant reference --ways 5 --shots 1 --meta-batch 8 --iterations 300 --inner-lr 0.01 --meta-lr 0.01 --lam 1 --downsample stride --eval-every 25 --checkpoint-every 50"
  "imaml-20w1s-stride-ref|--algorithm imaml --imaml-variant reference --ways 20 --shots 1 --queries 5 --meta-batch 4 --iterations 200 --inner-steps 25 --inner-lr 0.01 --meta-lr 0.01 --lam 1 --downsample stride --eval-every 50 --checkpoint-every 25"
  # The MAML-family rows above on the stride-2 network (600 meta-steps of 8 tasks, as theirs)
  "maml-5w1s-stride-600|--algorithm maml --ways 5 --shots 1 --meta-batch 8 --iterations 600 --inner-lr 0.1 --downsample stride --eval-every 100 --checkpoint-every 100"
  "fomaml-5w1s-stride|--algorithm fomaml --ways 5 --shots 1 --meta-batch 8 --iterations 600 --inner-lr 0.1 --downsample stride --eval-every 100 --checkpoint-every 100"
  "metasgd-5w1s-stride|--algorithm metasgd --ways 5 --shots 1 --meta-batch 8 --iterations 600 --inner-lr 0.1 --downsample stride --eval-every 100 --checkpoint-every 100"
  "maml-20w1s-stride|--algorithm maml --ways 20 --shots 1 --queries 5 --meta-batch 4 --iterations 600 --inner-lr 0.1 --downsample stride --eval-every 100 --checkpoint-every 100"
  # Ravi & Larochelle's LSTM meta-learner on Omniglot (the paper's mini-ImageNet images are not here):
  # Conv4 with 32 filters, 12 updates at 1 shot, one episode per update, Adam 1e-3, clipped at 0.25;
  # as many episodes as 40 minutes allow
  "ravi-larochelle-5w1s|--algorithm ravi-larochelle --ways 5 --shots 1 --iterations 2400 --minutes 40 --eval-every 100 --checkpoint-every 50"
  "reptile-20w1s|--algorithm reptile --ways 20 --shots 1 --queries 5 --meta-batch 5 --iterations 600 --inner-lr 0.1 --inner-steps 10 --inner-batch 20 --test-steps 10 --eval-every 200"
  # Metric-based learners (issue #5): no head, so one model is also scored on 20-way tasks
  # (--test-ways 20), as Snell et al. do; 1-shot and 5-shot are trained separately.
  # Prototypical networks: 20-way training episodes, 5 queries per class
  "protonet-5w1s|--algorithm protonet --ways 5 --train-ways 20 --shots 1 --queries 5 --iterations 800 --test-ways 20"
  # and Snell et al.'s 60-way training episodes, trained longer
  "protonet-5w1s-60way|--algorithm protonet --ways 5 --train-ways 60 --shots 1 --queries 5 --iterations 3000 --test-ways 20 --eval-every 500"
  # twice as long again, the Adam step halved every 2000 episodes as in Snell et al.
  "protonet-5w1s-60way-long|--algorithm protonet --ways 5 --train-ways 60 --shots 1 --queries 5 --iterations 6000 --meta-lr-halve-every 2000 --test-ways 20 --eval-every 1000"
  "protonet-5w5s-60way|--algorithm protonet --ways 5 --train-ways 60 --shots 5 --queries 5 --iterations 1800 --test-ways 20 --eval-every 600"
  "protonet-5w5s|--algorithm protonet --ways 5 --train-ways 20 --shots 5 --queries 5 --iterations 600 --test-ways 20"
  "relation-5w1s|--algorithm relation --ways 5 --shots 1 --queries 15 --iterations 900 --test-ways 20"
  # trained 10x longer, the Adam step halved every 3000 episodes
  "relation-5w1s-long|--algorithm relation --ways 5 --shots 1 --queries 15 --iterations 9000 --meta-lr-halve-every 3000 --test-ways 20 --eval-every 1000"
  "relation-5w5s|--algorithm relation --ways 5 --shots 5 --queries 10 --iterations 700 --test-ways 20"
  # trained 6x longer, the Adam step halved every 1500 episodes
  "relation-5w5s-long|--algorithm relation --ways 5 --shots 5 --queries 10 --iterations 4000 --meta-lr-halve-every 1500 --test-ways 20 --eval-every 1000"
  # trained on 20-way episodes for the 20-way figures (as Sung et al. do: 10 queries per class at 1
  # shot, 5 at 5 shots), instead of scoring a 5-way model at 20 ways
  "relation-20w1s|--algorithm relation --ways 20 --shots 1 --queries 10 --iterations 7000 --meta-lr-halve-every 2500 --eval-every 1000"
  "relation-20w5s|--algorithm relation --ways 20 --shots 5 --queries 5 --iterations 8000 --meta-lr-halve-every 2500 --eval-every 1000"
  # Matching networks without full-context embeddings (Vinyals et al.'s Omniglot figures are without
  # them), and with them at 5-way 1-shot
  "matching-5w1s|--algorithm matching --ways 5 --shots 1 --queries 15 --iterations 1500 --test-ways 20"
  # trained 13x longer, the Adam step halved every 7000 episodes
  "matching-5w1s-long|--algorithm matching --ways 5 --shots 1 --queries 15 --iterations 20000 --meta-lr-halve-every 7000 --test-ways 20 --eval-every 2000"
  "matching-5w5s|--algorithm matching --ways 5 --shots 5 --queries 10 --iterations 1000 --test-ways 20"
  # trained 4x longer, the Adam step halved every 1500 episodes
  "matching-5w5s-long|--algorithm matching --ways 5 --shots 5 --queries 10 --iterations 4000 --meta-lr-halve-every 1500 --test-ways 20 --eval-every 1000"
  # trained on 20-way episodes for the 20-way figures, instead of scoring a 5-way model at 20 ways
  "matching-20w1s|--algorithm matching --ways 20 --shots 1 --queries 5 --iterations 12000 --meta-lr-halve-every 4000 --eval-every 2000"
  "matching-20w5s|--algorithm matching --ways 20 --shots 5 --queries 5 --iterations 5000 --meta-lr-halve-every 2000 --eval-every 1000"
  # 40% longer, on 2 threads
  "matching-20w5s-long|--algorithm matching --ways 20 --shots 5 --queries 5 --iterations 7000 --meta-lr-halve-every 2500 --eval-every 1000 --threads 2"
  "matching-fce-5w1s|--algorithm matching --fce --ways 5 --shots 1 --queries 15 --iterations 1500"
  # Siamese networks (Koch et al. 2015): trained on images_background pairs, scored on 20-way 1-shot
  # tasks from images_evaluation (1 query per class) and on Lake et al.'s original 20 runs
  "siamese-20w1s-lake|--algorithm siamese --split background --ways 20 --shots 1 --queries 1 --pairs 64 --iterations 1400 --meta-lr 0.002 --lake-runs $DATA/all_runs.zip"
  # the same with Koch et al.'s affine distortions of the training images, trained longer
  "siamese-20w1s-lake-distort|--algorithm siamese --split background --ways 20 --shots 1 --queries 1 --pairs 64 --iterations 3000 --meta-lr 0.002 --distort --lake-runs $DATA/all_runs.zip"
  # and 6x longer again, the Adam step halved every 5000 steps
  "siamese-20w1s-lake-long|--algorithm siamese --split background --ways 20 --shots 1 --queries 1 --pairs 64 --iterations 19000 --meta-lr 0.002 --meta-lr-halve-every 5000 --distort --eval-every 2000 --lake-runs $DATA/all_runs.zip"
)

npm run build --silent
mkdir -p bench/results/omniglot runs/repro
for entry in "${RUNS[@]}"; do
  name=${entry%%|*}; argv=${entry#*|}
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  echo "== $name: node dist/cli/main.js --dataset omniglot --data $DATA $argv"
  # shellcheck disable=SC2086
  node dist/cli/main.js --dataset omniglot --data "$DATA" $argv --out "runs/repro/$name" --force 2>&1 | tee "runs/repro/$name.log"
  cp "runs/repro/$name/report.json" "bench/results/omniglot/$name.json"
done
