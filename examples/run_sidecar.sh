#!/usr/bin/env bash
# Command 1 of the local recipe: register the sentiment model on first run, then run the sidecar.
#   SHIFTWATCH_TOKEN=dev examples/run_sidecar.sh
# MODEL_DIR: a fine-tuned Hugging Face sentiment classifier (labels negative,positive). Without
# it, a starter classifier is built offline from the local all-MiniLM-L6-v2 with a fresh,
# untrained 2-label head: the plumbing (logging, drift, reports, reload) is real, its
# predictions are not meaningful until `shiftwatch retrain` has labelled data to learn from.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SW=${SW:-.venv/bin/shiftwatch}
CONFIG=examples/sidecar.yaml
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ ! -f example-run/models/sentiment/ACTIVE ]; then
  if [ -z "${MODEL_DIR:-}" ]; then
    MODEL_DIR=example-run/starter-model
    "$PY" - "$MODEL_DIR" <<'PY'
import sys
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from collectors.encoding import minilm_path
src, out = minilm_path(), sys.argv[1]
labels = {0: "negative", 1: "positive"}
model = AutoModelForSequenceClassification.from_pretrained(
    str(src), num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()})
model.save_pretrained(out)
AutoTokenizer.from_pretrained(str(src)).save_pretrained(out)
PY
  fi
  "$SW" models register "$MODEL_DIR" --model sentiment --labels negative,positive --activate --config "$CONFIG"
fi
exec "$SW" serve --config "$CONFIG"
