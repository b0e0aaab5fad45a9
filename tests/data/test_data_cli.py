"""``ovavss make-split``, ``check`` and ``generate-data`` through the CLI, bad input included."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from ovavss_cli.data.avsobject import load_avsobject
from ovavss_cli.data.classes import S4_CATEGORY_TO_CLASS, class_id
from ovavss_cli.data.split import load_split
from ovavss_cli.data.synthetic import ClipSpec, class_tone, generate_avss

SPECS = [
    ClipSpec("aaaaaaaaaaa_0_5000", "v1s", "train", ("guitar",)),
    ClipSpec("bbbbbbbbbbb_0_5000", "v1s", "train", ("violin",)),
    ClipSpec("ccccccccccc_1", "v1m", "train", ("piano", "violin")),
    ClipSpec("ddddddddddd_0_10000", "v2", "test", ("cello", "woman")),
    ClipSpec("eeeeeeeeeee_0_10000", "v2", "val", ("tabla",)),
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "avss"
    generate_avss(root, SPECS, size=(16, 24))
    return root


def _one_line_error(result, path: Path, problem: str) -> None:
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {path}: ") and problem in lines[0], lines[0]


def test_make_split(cli, tree, tmp_path):
    out = tmp_path / "split.json"
    result = cli("make-split", tree, "--out", out)
    assert result.exit_code == 0, result.output
    assert "train 1 (dropped 2" in result.stdout and "val 1, test 1" in result.stdout
    assert load_split(out).uids("train") == ("aaaaaaaaaaa_0_5000",)
    first = out.read_bytes()
    result = cli("make-split", tree, "--out", out, "--rule", "ignore-novel", "--force")
    assert result.exit_code == 0
    split = load_split(out)
    assert split.rule == "ignore-novel" and split.ignored("ccccccccccc_1") == (68,)
    cli("make-split", tree, "--out", out, "--force")
    assert out.read_bytes() == first  # same input, same bytes


def test_make_split_refuses_to_overwrite(cli, tree, tmp_path):
    out = tmp_path / "split.json"
    out.write_text("precious")
    _one_line_error(cli("make-split", tree, "--out", out), out, "already exists; pass --force")
    assert out.read_text() == "precious"


def test_make_split_default_output_name(cli, tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("make-split", tree).exit_code == 0
    assert load_split(tmp_path / "avsbench-ov-split.json").rule == "exclude-novel"


def _broken_metadata(root: Path) -> Path:
    root.mkdir()
    (root / "metadata.csv").write_text("vid,uid,s_min,s_sec,a_obj,split,label\nabc,abc_0_5000,0,0,guitar\n")
    return root / "metadata.csv"


@pytest.mark.parametrize(
    ("make_root", "problem"),
    [
        (lambda tmp: (tmp / "missing", tmp / "missing"), "dataset root not found"),
        (lambda tmp: ((tmp / "empty").mkdir() or tmp / "empty", tmp / "empty"), "dataset root is empty"),
        (lambda tmp: (tmp / "broken", _broken_metadata(tmp / "broken")), "line 2: 5 fields, the header has 7"),
    ],
)
def test_make_split_bad_root_writes_nothing(cli, tmp_path, make_root, problem):
    root, named = make_root(tmp_path)
    out = tmp_path / "out.json"
    _one_line_error(cli("make-split", root, "--out", out), named, problem)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.json*"))  # no temp file left either


def test_make_split_bad_rule(cli, tree, tmp_path):
    out = tmp_path / "out.json"
    result = cli("make-split", tree, "--out", out, "--rule", "paper")
    assert result.exit_code == 1 and "unknown split rule 'paper'" in result.stderr
    assert not out.exists()


def test_check_clean_and_problems(cli, tree, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich tables: no wrapping inside cells
    result = cli("check", tree)
    assert result.exit_code == 0, result.output
    assert "v1s" in result.stdout and "OK" in result.stdout
    bad = tmp_path / "bad"
    info = generate_avss(bad, SPECS, size=(16, 24), quirks="unknown-colour,missing-audio")
    (bad / "v2/ddddddddddd_0_10000/labels_semantic/3.png").write_bytes(b"corrupt")
    report = tmp_path / "report.json"
    result = cli("check", bad, "--json", report)
    assert result.exit_code == 1
    unknown = info.quirk_paths["unknown-colour"].relative_to(bad).as_posix()
    assert f"{unknown}: 9 pixels" in result.stdout
    assert "v2/eeeeeeeeeee_0_10000/audio.wav" in result.stdout
    assert "v2/ddddddddddd_0_10000/labels_semantic/3.png: cannot decode image" in result.stdout
    assert "3 problems" in result.stdout
    document = json.loads(report.read_text())
    assert {item["path"] for item in document["problems"]["unreadable"]} == {
        "v2/ddddddddddd_0_10000/labels_semantic/3.png"
    }
    _one_line_error(cli("check", bad, "--json", report), report, "already exists")


def test_check_force_without_json_is_refused(cli, tree):
    result = cli("check", tree, "--force")  # there is nothing for it to overwrite
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: --force: only with --json (the file it lets you overwrite)"


def test_check_not_a_dataset(cli, tmp_path):
    (tmp_path / "a.txt").write_text("x")
    _one_line_error(cli("check", tmp_path), tmp_path, "not an AVSBench root")


def test_generate_data(cli, tmp_path):
    result = cli("generate-data", tmp_path / "g", "--clips", "4", "--quirks", "typo", "--silent-distractors", "1")
    assert result.exit_code == 0, result.output
    assert "5 clips" in result.stdout
    assert cli("check", tmp_path / "g").exit_code == 0
    _one_line_error(cli("generate-data", tmp_path / "g"), tmp_path / "g", "already exists")
    result = cli("generate-data", tmp_path / "obj", "--layout", "ms3", "--clips", "3")
    assert result.exit_code == 0 and (tmp_path / "obj/Multi-sources/ms3_meta_data.csv").is_file()
    assert cli("generate-data", tmp_path / "o2", "--layout", "s4", "--quirks", "typo").exit_code == 1
    assert not (tmp_path / "o2").exists()
    result = cli("generate-data", tmp_path / "o3", "--quirks", "nonsense")
    assert result.exit_code == 1 and "unknown quirk(s) nonsense" in result.stderr
    result = cli("generate-data", tmp_path / "o4", "--world", "flat")
    assert result.exit_code == 1 and "unknown world 'flat'" in result.stderr and not (tmp_path / "o4").exists()


def test_generate_data_graded_world(cli, tmp_path):
    """``--world graded`` (the bundled demo's world) reaches every clip: the clip's tone is its graded one."""
    result = cli("generate-data", tmp_path / "g", "--clips", "2", "--world", "graded", "--layout", "s4")
    assert result.exit_code == 0, result.output
    dataset = load_avsobject(tmp_path / "g" / "Single-source", "s4")
    clip = dataset.clips[0]
    with wave.open(str(dataset.audio_path(clip))) as audio:
        rate, waveform = audio.getframerate(), np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2")
    spectrum = np.abs(np.fft.rfft(waveform))
    peak = np.fft.rfftfreq(len(waveform), 1 / rate)[spectrum.argmax()]
    name = S4_CATEGORY_TO_CLASS[clip.category]
    assert abs(peak - class_tone(class_id(name), "graded")[0]) < 2
    assert abs(peak - class_tone(class_id(name))[0]) > 2


def test_check_paths_are_relative_to_a_relative_root(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    generate_avss(tmp_path / "rel", SPECS[3:], size=(16, 24), quirks="missing-audio")
    assert cli("check", "rel", "--json", "report.json").exit_code == 1
    document = json.loads((tmp_path / "report.json").read_text())
    assert [item["path"] for item in document["problems"]["missing"]] == ["v2/eeeeeeeeeee_0_10000/audio.wav"]
