"""A stand-in sweep task for examples/sweep.yaml: picks its learning rate by array index."""

import os

index = int(os.environ.get("MINGA_ARRAY_INDEX", "0"))
print(f"trial {index}: lr={10 ** (-1 - index / 10):.2e}, results in {os.environ.get('RESULTS', '.')}")
