"""SSH host specs in target files: the mapping form, options, paths, ${ENV_VAR} references, one-line errors;
and the ssh command line they make (strict host keys, known_hosts, the jump host's ProxyCommand)."""

import shlex
import textwrap

import pytest

from conformance.measure.host.ssh import jump_command, resolved_options, ssh_args
from conformance.model import secrets
from conformance.model.errors import ConfigError
from conformance.model.hostspec import parse_jump, split_spec
from conformance.model.target import load_target


def target(tmp_path, hosts: str):
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent("""\
        name: lab
        sites:
          - name: store-1
            role: edge
            hosts:
        """) + textwrap.indent(textwrap.dedent(hosts), "      "), encoding="utf-8")
    return path


def test_mapping_form_becomes_one_spec_string_with_absolute_paths(tmp_path):
    (tmp_path / "known_hosts").write_text("")
    (tmp_path / "cfg").write_text("")
    t = load_target(target(tmp_path, """\
        - spec: ssh://ops@10.0.0.5:2222
          ssh_identity_file: ${EDGE_TEST_KEY}
          known_hosts: known_hosts
          ssh_config: cfg
          jump: ops@bastion.example.net:22
          timeout: 7
        - paramiko://ops@10.0.0.6?known_hosts=known_hosts&ssh_identity_file=${EDGE_TEST_KEY}
        - docker://store-db
        """))
    ssh, paramiko, docker = t.sites[0].hosts
    base, options = split_spec(ssh)
    assert base == "ssh://ops@10.0.0.5:2222"
    assert dict(options) == {"ssh_identity_file": "${EDGE_TEST_KEY}", "known_hosts": str(tmp_path / "known_hosts"),
                             "ssh_config": str(tmp_path / "cfg"), "jump": "ops@bastion.example.net:22",
                             "timeout": "7"}
    assert "${EDGE_TEST_KEY}" in ssh  # a reference stays readable in reports
    assert dict(split_spec(paramiko)[1])["known_hosts"] == str(tmp_path / "known_hosts")
    assert docker == "docker://store-db"
    # every ${VAR} of a host is a known secret: its value is redacted everywhere
    assert secrets.target_variables(t) == {"EDGE_TEST_KEY": "hosts[0] of site store-1"}
    assert secrets.known_secret_values(t, {"EDGE_TEST_KEY": "/home/ops/.ssh/store_key"}) == \
        {"EDGE_TEST_KEY": "/home/ops/.ssh/store_key"}


@pytest.mark.parametrize("hosts, line, field, message", [
    ("- ssh://ops:hunter2@10.0.0.5\n", 6, "sites[0].hosts[0]", "no passwords in host specs"),
    ("- spec: ssh://ops@h\n  known_host: x\n", 7, "sites[0].hosts[0].known_host", 'unknown key "known_host"'),
    ("- ssh://ops@h?known_host=x\n", 6, "sites[0].hosts[0]", 'unknown option "known_host" of an ssh:// host '
                                                             '(did you mean "known_hosts"?)'),
    ("- spec: ssh://ops@h\n  known_hosts: nowhere\n", 7, "sites[0].hosts[0].known_hosts", "known_hosts: "),
    ("- spec: ssh://ops@h\n  jump: 'a b'\n", 7, "sites[0].hosts[0].jump", '"a b" is not a jump host'),
    ("- spec: paramiko://ops@h\n  ssh_extra_args: '-v'\n", 7, "sites[0].hosts[0].ssh_extra_args",
     'option "ssh_extra_args" is for ssh:// and safe-ssh:// hosts'),
    ("- spec: ssh://ops@h\n  ssh_extra_args: '-o PasswordAuthentication=yes -o Password=x'\n", 7,
     "sites[0].hosts[0].ssh_extra_args", "no passwords in ssh options"),
    ("- spec: ssh://ops@h\n  timeout: 2 min\n", 7, "sites[0].hosts[0].timeout", "whole number of seconds"),
    ("- spec: docker://x\n  known_hosts: x\n", 6, "sites[0].hosts[0]", "options as keys are for"),
    ("- spec: ssh://ops@h?timeout=3\n  jump: b\n", 6, "sites[0].hosts[0].spec", "not both"),
    ("- sssh://ops@h\n", 6, "sites[0].hosts[0]", 'unknown testinfra backend "sssh" (did you mean "ssh"?)'),
])
def test_host_spec_errors_are_one_located_line(tmp_path, hosts, line, field, message):
    path = target(tmp_path, hosts)
    with pytest.raises(ConfigError) as exc:
        load_target(path)
    text = str(exc.value)
    assert "\n" not in text
    assert text.startswith(f"{path}:{line}: {field}: "), text
    assert message in text, text
    assert "hunter2" not in text


def test_ssh_command_line_checks_host_keys_and_quotes_values(monkeypatch):
    monkeypatch.setenv("EDGE_TEST_KEY", "/keys/my key")
    opts = resolved_options("ssh://ops@h:22?ssh_identity_file=${EDGE_TEST_KEY}&known_hosts=/kh/known hosts"
                            "&jump=jumper@bastion:2200")
    assert opts["ssh_identity_file"] == "/keys/my key"
    args = shlex.split(ssh_args(opts))
    assert args[:4] == ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    assert "UserKnownHostsFile=/kh/known hosts" in args
    proxy = next(a for a in args if a.startswith("ProxyCommand="))
    inner = shlex.split(proxy[len("ProxyCommand="):])
    assert inner[:5] == ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    assert inner[-3:] == ["-W", "[%h]:%p", "bastion"]
    assert ["-p", "2200"] == inner[inner.index("-p"):inner.index("-p") + 2]
    assert "UserKnownHostsFile=/kh/known hosts" in inner and "/keys/my key" in inner
    assert "StrictHostKeyChecking=no" not in " ".join(args)


def test_relaxing_host_key_checking_is_the_users_explicit_choice():
    args = ssh_args({"ssh_extra_args": "-o StrictHostKeyChecking=accept-new"})
    assert "StrictHostKeyChecking=yes" not in args and args.endswith("-o StrictHostKeyChecking=accept-new")


def test_an_unset_variable_is_named_not_guessed(monkeypatch):
    monkeypatch.delenv("EDGE_TEST_NOT_SET", raising=False)
    with pytest.raises(LookupError, match="EDGE_TEST_NOT_SET.*ssh_identity_file"):
        resolved_options("ssh://h?ssh_identity_file=${EDGE_TEST_NOT_SET}")


def test_jump_syntax():
    assert parse_jump("ops@10.0.0.1:2222").port == 2222
    assert parse_jump("[::1]:22").host == "::1"
    assert parse_jump("bastion").user is None
    for bad in ("a b", "ops@", "h:99999", "-oProxyCommand=x", "-oFoo", "ops@-x"):
        with pytest.raises(ValueError):
            parse_jump(bad)
    assert "-W" in jump_command({"jump": "b"})
