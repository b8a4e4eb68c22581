"""Settings from NRW_-prefixed environment variables, read once per process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SERVICES = ("intake", "case", "advocacy", "reporting")
DEFAULT_PORTS = {"intake": 8001, "case": 8002, "advocacy": 8003, "reporting": 8004}

TOPICS = {
    "intake": "intake.events",
    "case": "case.events",
    "advocacy": "advocacy.events",
    "reporting": "reporting.events",
}

# The topics each service's consumer reads (its broker principal may read these and no others).
CONSUMES = {
    # intake also reads every service's topic for its audit.recorded events (shared/audit_events.py)
    "intake": ["intake.events", "case.events", "advocacy.events", "reporting.events"],
    "case": ["intake.events", "advocacy.events", "reporting.events"],
    "advocacy": ["case.events"],
    "reporting": ["intake.events", "case.events", "advocacy.events"],
}


def dead_letter_topic(topic: str) -> str:
    """Name of the dead-letter topic for a source topic."""
    return f"{topic}.dlq"


def all_topics() -> list[str]:
    """Every topic the system uses: one per producing service and one dead-letter topic each."""
    return [t for topic in TOPICS.values() for t in (topic, dead_letter_topic(topic))]


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"NRW_{name}", default)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _roles(value: str) -> tuple:
    return tuple(sorted({r.strip() for r in value.split(",") if r.strip()}))


def service_port(service: str) -> int:
    """The port a service's web process listens on (NRW_<SERVICE>_PORT, default 8001-8004)."""
    return int(_env(f"{service.upper()}_PORT", str(DEFAULT_PORTS[service])))


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the defaults of a developer's machine."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "SASL_PLAINTEXT"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_cafile: Path | None = None
    mongo_uri: str = "mongodb://127.0.0.1:27017/"
    mongo_uri_file: Path | None = None  # a whole connection string, credentials included (shared/mongo_accounts.py)
    db_prefix: str = "nrw_"
    admin_password: str | None = None
    token_ttl_seconds: int = 900
    token_private_key_file: Path | None = None
    token_public_key_file: Path | None = None
    secrets_dir: Path | None = None
    session_absolute_hours: float = 12.0
    twofa_roles: tuple = ("admin", "caseworker", "advocate")
    identifying_reads_per_hour: int = 60
    max_body_bytes: int = 1_000_000
    max_json_depth: int = 32
    public_url: str | None = None
    trusted_proxies: int = 0
    login_failures_before_lock: int = 5
    login_lock_seconds: float = 30.0
    login_attempts_per_minute: int = 20
    blind_index_key: str | None = None
    topic_partitions: int = 3
    topic_replication: int = 1  # NRW_TOPIC_REPLICATION: 1 on one broker, 3 on a three-broker cluster
    relay_interval_seconds: float = 1.0
    relay_grace_seconds: float = 3.0
    session_idle_minutes: float = 30.0
    appeal_due_hours: float = 24.0
    follow_up_days: int = 7
    service_urls: dict = field(default_factory=dict)
    var_dir: Path = ROOT / "var"

    @classmethod
    def from_env(cls) -> "Settings":
        """Build settings from NRW_* environment variables."""
        urls = {
            name: _env(f"{name.upper()}_URL", f"http://127.0.0.1:{service_port(name)}")
            for name in SERVICES
        }
        return cls(
            kafka_bootstrap=_env("KAFKA_BOOTSTRAP", cls.kafka_bootstrap),
            kafka_security_protocol=_env("KAFKA_SECURITY_PROTOCOL", cls.kafka_security_protocol),
            kafka_sasl_username=_env("KAFKA_SASL_USERNAME") or None,
            kafka_sasl_password=_env("KAFKA_SASL_PASSWORD") or None,
            kafka_sasl_password_file=_path(_env("KAFKA_SASL_PASSWORD_FILE")),
            kafka_ssl_cafile=_path(_env("KAFKA_SSL_CAFILE")),
            mongo_uri=_env("MONGO_URI", cls.mongo_uri),
            mongo_uri_file=_path(_env("MONGO_URI_FILE")),
            db_prefix=_env("DB_PREFIX", cls.db_prefix),
            admin_password=_env("ADMIN_PASSWORD") or None,  # empty means unset, never an empty password
            token_ttl_seconds=int(_env("TOKEN_TTL_SECONDS", str(cls.token_ttl_seconds))),
            token_private_key_file=_path(_env("TOKEN_PRIVATE_KEY_FILE")),
            token_public_key_file=_path(_env("TOKEN_PUBLIC_KEY_FILE")),
            secrets_dir=_path(_env("SECRETS_DIR")),
            session_absolute_hours=float(_env("SESSION_ABSOLUTE_HOURS", str(cls.session_absolute_hours))),
            twofa_roles=_roles(_env("2FA_ROLES", ",".join(cls.twofa_roles))),
            identifying_reads_per_hour=int(_env("IDENTIFYING_READS_PER_HOUR", str(cls.identifying_reads_per_hour))),
            max_body_bytes=int(_env("MAX_BODY_BYTES", str(cls.max_body_bytes))),
            max_json_depth=int(_env("MAX_JSON_DEPTH", str(cls.max_json_depth))),
            public_url=_env("PUBLIC_URL") or None,
            trusted_proxies=int(_env("TRUSTED_PROXIES", "0")),
            login_failures_before_lock=int(_env("LOGIN_FAILURES_BEFORE_LOCK", str(cls.login_failures_before_lock))),
            login_lock_seconds=float(_env("LOGIN_LOCK_SECONDS", str(cls.login_lock_seconds))),
            login_attempts_per_minute=int(_env("LOGIN_ATTEMPTS_PER_MINUTE", str(cls.login_attempts_per_minute))),
            blind_index_key=_env("BLIND_INDEX_KEY"),
            topic_partitions=int(_env("TOPIC_PARTITIONS", str(cls.topic_partitions))),
            topic_replication=int(_env("TOPIC_REPLICATION", str(cls.topic_replication))),
            relay_interval_seconds=float(_env("RELAY_INTERVAL_SECONDS", "1.0")),
            relay_grace_seconds=float(_env("RELAY_GRACE_SECONDS", "3.0")),
            session_idle_minutes=float(_env("SESSION_IDLE_MINUTES", str(cls.session_idle_minutes))),
            appeal_due_hours=float(_env("APPEAL_DUE_HOURS", str(cls.appeal_due_hours))),
            follow_up_days=int(_env("FOLLOW_UP_DAYS", str(cls.follow_up_days))),
            service_urls=urls,
            var_dir=Path(_env("VAR", str(ROOT / "var"))),
        )

    @property
    def topic_min_insync(self) -> int:
        """min.insync.replicas of every topic: 2 of 3 replicas (a write acknowledged with acks=all
        is on two brokers, and one broker may be down), 1 with fewer than 3."""
        return 2 if self.topic_replication >= 3 else 1

    def url_of(self, service: str) -> str:
        """Where a service's web process answers (configured, else the local default port)."""
        return self.service_urls.get(service) or f"http://127.0.0.1:{service_port(service)}"

    @property
    def secrets_path(self) -> Path:
        """Where this process's key files are (NRW_SECRETS_DIR; default var/secrets)."""
        return self.secrets_dir or self.var_dir / "secrets"

    @property
    def secure_cookies(self) -> bool:
        """True when people reach the pages over https (NRW_PUBLIC_URL): __Host- cookies and HSTS."""
        return bool(self.public_url and self.public_url.lower().startswith("https://"))

    def database_name(self, owner: str) -> str:
        """The MongoDB database owned by one service (or 'identity' for users)."""
        return f"{self.db_prefix}{owner}"
