"""The command line as a new user meets it: paths that do not exist, mistyped flags and commands,
`index --strict`, the size limit as a setting, and messages that say what really happened."""
import shutil

import pytest

from assistant.cli import main
from assistant.index import live_build
from conftest import CORPUS
from test_robust_index import FAKE, fake  # noqa: F401  (fake: the instant embedder fixture)

ENTRY = "2013_meeus_mitochondria_oxidative_stress.txt"


@pytest.fixture(autouse=True)
def elsewhere(tmp_path, monkeypatch):
    """Run in a temporary folder, so a command that runs by mistake cannot touch the project's index/."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(CORPUS / ENTRY, folder / ENTRY)
    return folder


@pytest.fixture
def fake_env(fake, monkeypatch):
    monkeypatch.setenv("ATLAS_EMBEDDING_MODEL", FAKE)


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse errors
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_index_with_a_mistyped_path_beside_a_real_one_is_an_error_naming_it(fake_env, corpus, tmp_path, capsys):
    index = tmp_path / "index"
    code, _, err = run(capsys, "index", corpus, tmp_path / "corpsu" / "x.txt", "--index", index)
    assert code == 2
    assert f"{tmp_path / 'corpsu' / 'x.txt'}: no such file or folder" in err
    assert f"nothing was indexed; no index was created at {index}/" in err  # none existed
    assert not index.exists()

    assert run(capsys, "index", corpus, "--index", index)[0] == 0
    before = live_build(index)
    code, _, err = run(capsys, "index", corpus, tmp_path / "missing.md", "--index", index)
    assert code == 2 and f"the index at {index}/ was left as it was" in err
    assert live_build(index) == before


@pytest.mark.parametrize("command", ["validate", "inspect"])
def test_validate_and_inspect_name_each_missing_path(command, corpus, tmp_path, capsys):
    link = tmp_path / "dangling.md"
    link.symlink_to(tmp_path / "gone.md")
    code, out, err = run(capsys, command, corpus, tmp_path / "nope", link)
    assert code == 2 and out == ""
    assert f"{tmp_path / 'nope'}: no such file or folder; {link}: broken link (its target does not exist)" in err


def test_index_strict_exits_1_when_anything_was_skipped(fake_env, corpus, tmp_path, capsys):
    (corpus / "notes.txt").write_text("not a study entry\n")
    index = tmp_path / "index"
    code, out, err = run(capsys, "index", corpus, "--index", index)
    assert code == 0 and "1 skipped" in out
    code, out, err = run(capsys, "index", corpus, "--index", index, "--strict")
    assert code == 1
    assert f"skipped {corpus / 'notes.txt'}:1: unknown format" in err
    assert "--strict: 1 skipped (listed above); exit 1. The index was still updated" in err
    (corpus / "notes.txt").unlink()
    assert run(capsys, "index", corpus, "--index", index, "--strict")[0] == 0


def test_max_file_bytes_is_a_setting(fake_env, corpus, tmp_path, capsys, monkeypatch):
    config = tmp_path / "atlas.toml"
    config.write_text("max_file_bytes = 100\n")
    code, out, err = run(capsys, "--config", config, "validate", corpus)
    assert code == 1 and "file too large" in out and "over the limit of 100 bytes per file" in out
    config.write_text("max_file_bytes = 0\n")
    code, _, err = run(capsys, "--config", config, "validate", corpus)
    assert code == 2 and "setting max_file_bytes: must be at least 1" in err
    monkeypatch.setenv("ATLAS_MAX_FILE_BYTES", "50")
    code, _, err = run(capsys, "index", corpus, "--index", tmp_path / "index")
    assert code == 2 and "no study could be read" in err and "file too large" in err


@pytest.mark.parametrize("argv, usage, message", [
    (["ask", "--jsn", "q"], "atlas-assistant ask", "unrecognized argument: --jsn (did you mean --json?)"),
    (["index", "--strct"], "atlas-assistant index", "did you mean --strict?"),  # --stric would abbreviate
    (["askk", "q"], "atlas-assistant", "invalid choice: 'askk'"),
    (["ask", "--mode", "clinican", "q"], "atlas-assistant ask", "did you mean 'clinician'?"),
    (["ask", "does", "pacing", "help"], "atlas-assistant ask",
     "unexpected arguments: pacing help (put a question of several words in quotes)"),
])
def test_mistyped_flags_commands_and_choices_suggest_the_close_match(argv, usage, message, capsys):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err
    assert err.startswith(f"usage: {usage} ")  # the usage of the command it belongs to
    if argv[0] == "askk":
        assert "did you mean 'ask'?" in err


def test_empty_corpus_says_whether_an_index_exists(fake_env, corpus, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    index = tmp_path / "index"
    code, _, err = run(capsys, "index", empty, "--index", index)
    assert code == 2 and "was not created (no index yet)" in err and "left as it was" not in err
    run(capsys, "index", corpus, "--index", index)
    code, _, err = run(capsys, "index", empty, "--index", index)
    assert code == 2 and f"The index at {index}/ was left as it was" in err
