from ovavss_cli import __version__


def test_help_lists_subcommands(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for name in ("make-split", "train", "eval", "predict", "visualize"):
        assert name in result.output


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert __version__ in result.output
