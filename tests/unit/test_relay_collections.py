"""Every collection a service writes with an outbox is swept by its relay (infra/Procfile and
docker-compose.yml): a web process hands its events to a background publisher after answering, so
what a stopped or killed process held is sent by the relay alone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Versioned stores whose versions never carry events (their writers pass no publisher).
WITHOUT_EVENTS = {("intake", "assignments_versions")}


def _outbox_collections(service: str) -> set[str]:
    """Collections of a service's stores written by insert_with_outbox, or as versions (VersionedStore)."""
    found = set()
    for path in (ROOT / "services" / service).glob("*store*.py"):
        source = path.read_text()
        named = dict(re.findall(r'self\.(\w+) = db\["(\w+)"\]', source))
        named.update(re.findall(r'def (\w+)\(self\) -> Collection:\s+(?:""".*?"""\s+)?return self\.db\["(\w+)"\]',
                                source, flags=re.S))
        for attribute in re.findall(r"insert_with_outbox\(self\.(\w+)", source):
            found.add(named[attribute])
        for name in re.findall(r'(?:VersionedStore\(db, |super\(\).__init__\(db, )"(\w+)"\)', source):
            found.add(f"{name}_versions")
    return {c for c in found if (service, c) not in WITHOUT_EVENTS}


def _relay_lines(text: str) -> dict[str, set[str]]:
    return {m.group(1): set(m.group(2).split()) for m in re.finditer(r"python -m shared\.relay (\w+) ([\w ]+)", text)}


def test_each_relay_sweeps_every_collection_its_service_writes_with_an_outbox():
    procfile = _relay_lines((ROOT / "infra" / "Procfile").read_text())
    compose = _relay_lines((ROOT / "docker-compose.yml").read_text())
    for service in ("intake", "case", "advocacy", "reporting"):
        written = _outbox_collections(service)
        assert written, service  # the patterns above still find this service's stores
        assert written <= procfile[service], (service, written - procfile[service])
        assert written <= compose[service], (service, written - compose[service])
