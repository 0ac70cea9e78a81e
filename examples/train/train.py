"""A stand-in training script for examples/train.toml: prints its settings and exits 0."""

import os

print(f"training for {os.environ.get('EPOCHS', '?')} epochs, wandb key set: {'WANDB_API_KEY' in os.environ}")
