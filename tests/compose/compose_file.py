"""Reading docker-compose.yml, its overlays and the proxy's Caddyfile the way compose and Caddy do,
without either: variable interpolation, services' settings in either compose syntax, and the
Caddyfile's blocks. The file tests (test_compose_file.py, test_compose_security.py) use these."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CADDYFILE = ROOT / "infra" / "proxy" / "Caddyfile"

_BARE = re.compile(r"\$(\w+)")
_EXPRESSION = re.compile(r"(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Resolve $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR:+other} and
    ${VAR+other}, nested ones included, the way compose does; a missing required one is a KeyError."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_resolve(text[i + 2:end], env))
            i = end + 1
        elif bare := _BARE.match(text, i):
            out.append(env.get(bare.group(1), ""))
            i = bare.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth, i = 1, start
    while i < len(text):
        if text.startswith("${", i):
            depth, i = depth + 1, i + 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unclosed ${{ in {text!r}")


def _resolve(expression: str, env: dict[str, str]) -> str:
    match = _EXPRESSION.fullmatch(expression)
    if match is None:
        raise ValueError(f"not a compose variable: ${{{expression}}}")
    name, op, arg = match.group("name"), match.group("op") or "", match.group("arg") or ""
    value = env.get(name)
    unset = value is None or (op.startswith(":") and value == "")
    if op.endswith("-"):
        return interpolate(arg, env) if unset else value
    if op.endswith("?"):
        if unset:
            raise KeyError(f"{name}: {arg}")
        return value
    if op.endswith("+"):
        return "" if unset else interpolate(arg, env)
    return value or ""


def resolved(node, env: dict[str, str]):
    """A parsed compose file (or part of it) with every string interpolated."""
    if isinstance(node, dict):
        return {key: resolved(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolved(value, env) for value in node]
    return interpolate(node, env) if isinstance(node, str) else node


def load(path: Path = COMPOSE_FILE) -> dict:
    """A compose file as PyYAML reads it (anchors and << merges resolved, nothing interpolated)."""
    return yaml.safe_load(path.read_text())


def service_env(service: dict) -> dict[str, str]:
    """A service's environment as a dict, whichever of the two compose forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def service_secrets(service: dict) -> dict[str, str]:
    """Secret name -> where it is mounted in the container, from either compose syntax."""
    mounts = {}
    for item in service.get("secrets") or []:
        if isinstance(item, str):
            mounts[item] = f"/run/secrets/{item}"
        else:
            target = item.get("target") or item["source"]
            mounts[item["source"]] = target if target.startswith("/") else f"/run/secrets/{target}"
    return mounts


def service_networks(service: dict) -> dict[str, dict]:
    """Network name -> its settings for the service (aliases, ...), from either compose syntax;
    compose puts a service without `networks` on `default`."""
    networks = service.get("networks")
    if networks is None:
        return {"default": {}}
    if isinstance(networks, list):
        return {name: {} for name in networks}
    return {name: settings or {} for name, settings in networks.items()}


@dataclass(frozen=True)
class Port:
    """One published port: host address (empty: every address), host port, container port, protocol."""
    host_ip: str
    published: str
    target: str
    protocol: str = "tcp"


def published_ports(service: dict) -> list[Port]:
    """The ports a service publishes on the host, from the short ("[ip:]host:container[/proto]") or
    the long syntax (docker compose config writes the long one)."""
    ports = []
    for item in service.get("ports") or []:
        if isinstance(item, dict):
            ports.append(Port(item.get("host_ip", ""), str(item.get("published", "")), str(item["target"]),
                              item.get("protocol", "tcp")))
            continue
        spec, _, protocol = str(item).partition("/")
        parts = spec.rsplit(":", 2)
        if len(parts) == 1:
            parts = ["", "", parts[0]]
        elif len(parts) == 2:
            parts = ["", *parts]
        ports.append(Port(parts[0], parts[1], parts[2], protocol or "tcp"))
    return ports


def project_services(services: dict) -> dict:
    """The services that run this project's image (built from infra/Dockerfile)."""
    return {name: s for name, s in services.items() if "build" in s}


def healthcheck_text(service: dict) -> str:
    """A service's healthcheck command as one string."""
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def compose_plugin_missing() -> str | None:
    """Why `docker compose` cannot run here, or None if it can."""
    if shutil.which("docker") is None:
        return "the docker client is not installed"
    try:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "`docker compose version` did not answer"
    return None if probe.returncode == 0 else "the docker compose plugin is not installed"


# The Caddyfile, as blocks of directives.

@dataclass
class Directive:
    """One Caddyfile line (its tokens) and the block it opens, if any."""
    tokens: list[str]
    block: list["Directive"] = field(default_factory=list)

    def find(self, name: str) -> list["Directive"]:
        """Every directive called `name`, at any depth under this one."""
        found = []
        for child in self.block:
            if child.tokens and child.tokens[0] == name:
                found.append(child)
            found += child.find(name)
        return found


def parse_caddyfile(text: str) -> Directive:
    """The Caddyfile as a tree: the root's block holds the global options block (tokens []),
    snippets (tokens ["(name)"]) and site blocks (tokens: the addresses). Comments are dropped;
    quoted tokens keep their text without the quotes."""
    root = Directive([])
    stack = [root]
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        tokens = _tokens(line)
        opens = tokens[-1:] == ["{"]
        if opens:
            tokens = tokens[:-1]
        if tokens == ["}"]:
            stack.pop()
            if not stack:
                raise ValueError(f"line {number}: unbalanced }}")
            continue
        directive = Directive(tokens)
        stack[-1].block.append(directive)
        if opens:
            stack.append(directive)
    if len(stack) != 1:
        raise ValueError("unclosed block at the end of the Caddyfile")
    return root


def _strip_comment(line: str) -> str:
    # A comment starts with # at the start of a line or after a space, outside quotes.
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "#" and not quoted and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _tokens(line: str) -> list[str]:
    return [quoted if quoted else bare for quoted, bare in re.findall(r'"([^"]*)"|(\S+)', line)]


def caddyfile() -> Directive:
    """infra/proxy/Caddyfile, parsed."""
    return parse_caddyfile(CADDYFILE.read_text())


def site_blocks(tree: Directive) -> list[Directive]:
    """The site blocks: neither the global options block nor a snippet."""
    return [d for d in tree.block if d.tokens and not d.tokens[0].startswith("(")]


def snippets(tree: Directive) -> dict[str, Directive]:
    """Snippet name -> its block."""
    return {d.tokens[0][1:-1]: d for d in tree.block if d.tokens and d.tokens[0].startswith("(")}


def global_options(tree: Directive) -> Directive:
    """The global options block (the first block, without a name)."""
    blocks = [d for d in tree.block if not d.tokens]
    assert len(blocks) == 1, "one global options block"
    return blocks[0]
