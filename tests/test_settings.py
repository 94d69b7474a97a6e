"""Settings come from one typed place: CLI flags over ATLAS_* environment over a TOML file over defaults."""
from pathlib import Path

import pytest

from assistant.settings import Settings, SettingsError, load_settings


def test_precedence_flags_over_environment_over_toml(tmp_path, monkeypatch):
    config = tmp_path / "atlas.toml"
    config.write_text('index_dir = "from-toml"\ntop_k = 7\nmode = "clinician"\n')
    monkeypatch.setenv("ATLAS_INDEX_DIR", "from-env")
    settings = load_settings({"mode": "patient"}, config)
    assert settings.index_dir == Path("from-env")  # environment beats the file
    assert settings.top_k == 7  # the file beats the default, typed as int
    assert settings.mode == "patient"  # a flag beats both
    monkeypatch.delenv("ATLAS_INDEX_DIR")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no atlas.toml here
    assert load_settings() == Settings()
    with pytest.raises(SettingsError, match="absent.toml: no such settings file"):
        load_settings(config=tmp_path / "absent.toml")


def test_environment_values_are_typed(monkeypatch):
    monkeypatch.setenv("ATLAS_TOP_K", "3")
    monkeypatch.setenv("ATLAS_CORPUS", "a:b")
    settings = load_settings()
    assert settings.top_k == 3 and settings.corpus == [Path("a"), Path("b")]


@pytest.mark.parametrize("content, words", [
    ("top_k = 'many'\n", "cannot read 'many' as int"),
    ("colour = 'blue'\n", "unknown settings ['colour']"),
    ("top_k = \n", "atlas.toml"),
    ("top_k = 2.7\n", "cannot read 2.7 as int"),
    ("candidates = 0\n", "candidates: must be at least 1"),
])
def test_bad_settings_are_clear_errors(tmp_path, content, words):
    config = tmp_path / "atlas.toml"
    config.write_text(content)
    with pytest.raises(SettingsError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_settings(config=config)


def test_choices_are_checked(monkeypatch):
    monkeypatch.setenv("ATLAS_MODE", "doctor")
    with pytest.raises(SettingsError, match="setting mode: 'doctor' is not one of patient, clinician"):
        load_settings()
