#!/usr/bin/env bash
# Datasets of the full-budget queue (issue 24), one after another: tvq reproduce at params/thesis.yaml,
# one torch thread by default, so that two of these share a 2-core machine (TVQ_QUEUE_THREADS=2 gives
# one list both cores: a run then fits a working session, see results/README.md). Run it again and an
# interrupted run resumes from its checkpoints.
#
# The checkpoints go to inflight/cache unless TVQ_CACHE_DIR says otherwise: a folder that git neither
# tracks nor ignores (never `git add` it), because a new working session on this project may recover
# such files from the last one, where it loses ignored ones such as runs/. That hand-over is not
# guaranteed (on 2026-12-07 the tree came back without inflight/ and two half-finished runs were lost),
# so a run that fits one session (TVQ_QUEUE_THREADS=2) is the safer plan.
#
# usage: scripts/queue_full.sh NAME [NAME ...]   (cheapest first: benchmarks/plan_reproduce.py --offline)
set -u
cd "$(dirname "$0")/.." && . .venv/bin/activate
export TVQ_EVALUATOR_DIR="${TVQ_EVALUATOR_DIR:-../shared/evaluators/lee2023-fcn}"
export TVQ_CACHE_DIR="${TVQ_CACHE_DIR:-$PWD/inflight/cache}"
mkdir -p runs "$TVQ_CACHE_DIR"
for name in "$@"; do
  if tvq reproduce "$name" -f params/thesis.yaml -p threads="${TVQ_QUEUE_THREADS:-1}" --no-progress >> "runs/queue_$name.log" 2>&1; then
    echo "finished $name $(date -u +%FT%TZ)" >> runs/queue.log
  else
    echo "failed $name $(date -u +%FT%TZ) (see runs/queue_$name.log)" >> runs/queue.log
  fi
done
