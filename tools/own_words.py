"""Flag 10-word runs that a corpus file shares with ../shared/data (the before-stop hook's check).

Usage: python tools/own_words.py [FILE ...]   (default: every file in corpus/)
"""
import pathlib
import re
import sys

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shingles(text: str, n: int = 10) -> set[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def shared_prose() -> set[str]:
    runs: set[str] = set()
    for path in SHARED.rglob("*"):
        if path.is_file() and path.suffix in {".md", ".txt"} and path.name != "README.md":
            text = path.read_text(errors="ignore")
            # titles, authors and journals are facts an entry may repeat: compare the prose only
            if "</details>" in text:
                text = text.split("</details>", 1)[-1]
            else:
                text = "\n".join(text.splitlines()[3:])
            runs |= shingles(text)
    return runs


def entry_prose(path: pathlib.Path) -> str:
    """An entry without its title, byline and metadata lines: those repeat facts, not sentences."""
    text = path.read_text(errors="ignore")
    start = text.find("\nQuick Summary")
    return text[start:] if start >= 0 else text


def copied_runs(paths: list[pathlib.Path]) -> dict[pathlib.Path, set[str]]:
    source = shared_prose()
    hits = {p: shingles(entry_prose(p)) & source for p in paths}
    return {p: h for p, h in hits.items() if h}


if __name__ == "__main__":
    root = pathlib.Path(__file__).resolve().parents[1]
    files = [pathlib.Path(a) for a in sys.argv[1:]] or sorted((root / "corpus").glob("*.txt"))
    found = copied_runs(files)
    for path, runs in found.items():
        print(f"{path}: {len(runs)} ten-word runs shared with shared/data, e.g. '{sorted(runs)[0]}'")
    print(f"checked {len(files)} files, {len(found)} with copied runs")
    sys.exit(1 if found else 0)
