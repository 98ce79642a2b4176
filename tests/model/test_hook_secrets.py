"""Hook commands in a target file (issue 15): literal secrets and ${VAR} in list commands are refused on
load with one located line that never echoes the value; ordinary commands and references are accepted.
(The CLI's side, one line and exit 2, is in tests/malformed/targets/hook_*.yaml.)"""

from __future__ import annotations

import json

import pytest

from conformance.model.errors import ConfigError
from conformance.model.target import load_target

SECRET = "zq-literal-77"


def _load(tmp_path, command) -> object:
    path = tmp_path / "target.yaml"
    path.write_text("name: lab\nsites:\n  - name: s1\n    role: edge\n    hooks:\n"
                    f"      kill: {{command: {json.dumps(command)}}}\n", encoding="utf-8")
    return load_target(path)


REFUSED = [
    (f"curl -H 'Authorization: Bearer {SECRET}' https://ops/kill/{{site}}", "(Authorization header)"),
    (f'curl -H "Proxy-Authorization: Basic {SECRET}" https://ops', "(Proxy-Authorization header)"),
    (f"curl -H 'X-Api-Key: {SECRET}' https://ops", "(X-Api-Key header)"),
    (f"curl -H 'PRIVATE-TOKEN: {SECRET}' https://ops", "(PRIVATE-TOKEN header)"),
    (f"opsctl --password {SECRET} kill", "(--password)"),
    (f"opsctl --api-token={SECRET} kill", "(--api-token)"),
    (f"curl 'https://ops/kill?site={{site}}&token={SECRET}'", "(token=)"),
    (f"curl 'https://ops/kill?access_token={SECRET}'", "(access_token=)"),
    (f"PGPASSWORD={SECRET} psql -h hub -c 'select 1'", "(PGPASSWORD=)"),
    (f"curl -u ops:{SECRET} https://ops", "(-u USER:PASSWORD)"),
    (f"curl --user=ops:{SECRET} https://ops", "(--user USER:PASSWORD)"),
    (f"curl https://ops:{SECRET}@ops.example.net/kill", "(a password in a URL)"),
    (["opsctl", "--secret", SECRET], "(--secret)"),
]


@pytest.mark.parametrize("command,what", REFUSED, ids=[str(c[1]) + str(i) for i, c in enumerate(REFUSED)])
def test_a_literal_secret_in_a_hook_command_is_one_located_line(tmp_path, command, what):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, command)
    text = str(err.value)
    field = "sites[0].hooks.kill.command" + ("[2]" if isinstance(command, list) else "")
    assert text == (f"{tmp_path / 'target.yaml'}:6: {field}: a literal secret in a hook command {what}: put it in "
                    "an environment variable and write ${ENV_VAR} in its place, as for credentials")
    assert SECRET not in text


ACCEPTED = [
    "curl -fsS -H 'Authorization: Bearer ${OPS_TOKEN}' https://ops.example.net/resume/{site}",
    "printf 'Authorization: Bearer %s\\n' \"${OPS_TOKEN}\" | curl -fsS -H @- https://ops/resume/{site}",
    'curl -H "Authorization: Bearer $OPS_TOKEN" -H "X-Api-Key: $(cat /run/secrets/key)" https://ops',
    "curl -u ops:${OPS_PASS} https://ops/kill && curl -u ops https://ops/ping",
    "curl https://${OPS_USER}:${OPS_PASS}@ops/kill 'https://ops/kill?site={site}&token=${T}'",
    "PGPASSWORD=${PG_PASS} psql -h hub",
    "docker login --password-stdin ops < /run/pw; opsctl --token-file /run/t --no-password x --token -",
    "ssh -p 2222 ops@store7 sudo ./wan-cut.sh on {cut_mode}; sudo -u root systemctl kill -s KILL edge-stack",
    "curl https://127.0.0.1:8080/x ssh://ops@host:22 echo token: see-vault",
    "tc qdisc add dev eth0 root netem delay {delay_ms}ms loss {loss_pct}% | awk '{print $1}'",
    ["./wan.sh", "{site}", "{delay_ms}", "--password-file", "/run/pw"],
]


@pytest.mark.parametrize("command", ACCEPTED)
def test_ordinary_commands_and_references_are_accepted(tmp_path, command):
    assert _load(tmp_path, command).sites[0].hooks["kill"].command == command


def test_a_reference_in_a_list_command_is_refused(tmp_path):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, ["./wan.sh", "{site}", "--token=${OPS_TOKEN}"])
    assert str(err.value).endswith(
        ":6: sites[0].hooks.kill.command[2]: ${OPS_TOKEN} in a list command would be put in the program's arguments, "
        "which any local user can read (ps): have the program read OPS_TOKEN from its environment (hooks run with "
        "it set), or write the command as a string, for the shell to expand")
