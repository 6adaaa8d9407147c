"""The `gateway` CLI through click's runner: check-config, and run refusing a broken config."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from streetsense.tools.gateway import gateway


def _config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "nodes.toml").write_text("")
    path = tmp_path / "gateway.toml"
    path.write_text('registry_path = "nodes.toml"\n\n[gateway]\nid = "gw-01"\nsite = "hanoi"\n'
                    f'data_dir = "{tmp_path}"\n\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n{extra}')
    return path


def test_pipeline_cli_check_config_ok_and_problems(tmp_path: Path) -> None:
    """check-config prints OK for a good file; for a bad one every problem with key and line."""
    runner = CliRunner()
    good = runner.invoke(gateway, ["check-config", "--config", str(_config(tmp_path))])
    assert good.exit_code == 0, good.output
    assert "OK" in good.output
    bad = runner.invoke(gateway, ["check-config", "--config",
                                  str(_config(tmp_path, 'protocol = "4"\nkeepalive_s = "x"\n'))])
    assert bad.exit_code == 1
    assert "mqtt.protocol" in bad.output and "mqtt.keepalive_s" in bad.output
    assert "line 10" in bad.output and "2 problem(s)" in bad.output


def test_pipeline_cli_run_refuses_a_broken_config(tmp_path: Path) -> None:
    """run with a broken config exits 1 and says how to check it; nothing is started."""
    result = CliRunner().invoke(gateway, ["run", "--config",
                                          str(_config(tmp_path, "inflight = 0\n"))])
    assert result.exit_code == 1
    assert "mqtt.inflight" in result.output and "check-config" in result.output


def test_pipeline_cli_run_refuses_a_broken_registry(tmp_path: Path) -> None:
    """run with a registry that has problems exits 1 naming them; nothing is started."""
    config = _config(tmp_path)
    (tmp_path / "nodes.toml").write_text('[[node]]\nid = "x"\n')
    result = CliRunner().invoke(gateway, ["run", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "nodes.toml" in result.output and "registry" in result.output


def test_pipeline_cli_hil_bench_with_an_empty_or_short_token_is_refused(tmp_path: Path) -> None:
    """[hil] enabled with an empty or short token: check-config names the problem (never the
    token) and run refuses to start; a 32-character token passes."""
    token = tmp_path / "hil.token"
    hil = f'\n[hil]\nenabled = true\ntoken_file = "{token}"\n'
    runner = CliRunner()
    for text, problem in (("\n", "the token is empty"), ("s3cret\n", "the token has only 6")):
        token.write_text(text)
        checked = runner.invoke(gateway, ["check-config", "--config", str(_config(tmp_path, hil))])
        started = runner.invoke(gateway, ["run", "--config", str(_config(tmp_path, hil))])
        assert checked.exit_code == 1 and f"hil.token_file: {problem}" in checked.output
        assert started.exit_code == 1 and problem in started.output
        assert "s3cret" not in checked.output + started.output
    token.write_text("0123456789abcdef0123456789abcdef\n")
    assert runner.invoke(gateway, ["check-config", "--config",
                                   str(_config(tmp_path, hil))]).exit_code == 0
