import pytest

from ovavss_cli.data.vocab import MAX_VOCAB_SIZE, parse_vocab
from ovavss_cli.errors import OvavssError


def test_comma_separated_names_are_stripped_and_keep_their_order():
    assert parse_vocab("dog,  siren , church   bell") == ("dog", "siren", "church bell")


def test_single_name():
    assert parse_vocab("emergency-car") == ("emergency-car",)


def test_file_one_name_per_line_blank_lines_skipped_commas_kept(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\ufeffdog\n\n  fire truck, red \nsiren\n\n", encoding="utf-8")
    assert parse_vocab(f"@{path}") == ("dog", "fire truck, red", "siren")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dog,,siren", "name 2 is empty"),
        ("dog, siren,", "name 3 is empty"),
        ("", "name 1 is empty"),
        ("dog, Siren, DOG", "name 3 'DOG' repeats name 1"),
    ],
)
def test_bad_comma_vocab_is_one_line_error(spec, message):
    with pytest.raises(OvavssError) as error:
        parse_vocab(spec)
    assert message in str(error.value)
    assert str(error.value).startswith("--vocab: ")
    assert "\n" not in str(error.value)


def test_file_duplicates_name_lines(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("dog\ncat\n\nCat\n", encoding="utf-8")
    with pytest.raises(OvavssError, match="line 4 'Cat' repeats line 2"):
        parse_vocab(f"@{path}")


def test_empty_or_missing_or_binary_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(OvavssError, match="vocabulary is empty"):
        parse_vocab(f"@{empty}")
    with pytest.raises(OvavssError, match="vocabulary file not found"):
        parse_vocab(f"@{tmp_path / 'nope.txt'}")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81dog")
    with pytest.raises(OvavssError, match="not UTF-8"):
        parse_vocab(f"@{binary}")


def test_too_many_names():
    assert len(parse_vocab(",".join(f"n{i}" for i in range(MAX_VOCAB_SIZE)))) == MAX_VOCAB_SIZE
    with pytest.raises(OvavssError, match=f"at most {MAX_VOCAB_SIZE}"):
        parse_vocab(",".join(f"n{i}" for i in range(MAX_VOCAB_SIZE + 1)))
