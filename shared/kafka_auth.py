"""Who may do what on the broker: the principals, their passwords, their client settings, the ACLs.

Each service has a principal of its own name. It may write its own topic only, read the topics
its consumer reads (in the consumer group of its own name), and write the dead-letter topics of
those (its consumer parks there what it cannot apply). `deadletters` (the dead-letter tool) reads
every dead-letter topic and writes back to the source topics and the dead-letter topics (a
replay), and reads the source topics to check that what it sends back is what they held. `operator` reads every topic and may describe every group (lag), for Kafka's own console
tools through `var/secrets/kafka-client.properties`. `admin` and the broker are super users whose
SCRAM credentials are written when the broker's storage is formatted (infra/kafka/start.sh): admin
creates the topics, the other principals' SCRAM-SHA-512 credentials and the ACLs
(`python -m shared.topics`), nothing else runs as admin, and no service may log in as a super user. Whatever is not granted is refused (`allow.everyone.if.no.acl.found=false`),
so an anonymous client, a wrong password, or a service writing another service's topic gets an
authorisation error from the broker itself.

A principal's password is `NRW_KAFKA_SASL_PASSWORD` (or the file `NRW_KAFKA_SASL_PASSWORD_FILE`)
when set, for a real cluster; otherwise the file `kafka-<principal>.password` in the secrets
folder (0600, made by `python -m shared.keys init`).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from shared.config import CONSUMES, SERVICES, TOPICS, Settings, all_topics, dead_letter_topic

SUPER_USERS = ("admin", "broker", "controller")  # the broker's own logins and its admin
TOOLS = ("deadletters", "operator")
SCRAM_PRINCIPALS = SERVICES + TOOLS  # credentials kept in the cluster's metadata, set by admin
MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192


class CredentialsMissing(RuntimeError):
    """This process has no Kafka password (run `python -m shared.keys init`, or set NRW_KAFKA_SASL_PASSWORD)."""


def password_path(settings: Settings, principal: str) -> Path:
    """Where a principal's password is kept on a local stack."""
    return settings.secrets_path / f"kafka-{principal}.password"


def client_properties_path(settings: Settings) -> Path:
    """The operator's configuration for Kafka's console tools (`--command-config`)."""
    return settings.secrets_path / "kafka-client.properties"


def ensure_passwords(settings: Settings) -> list[Path]:
    """Make every missing password file (and the operator's client properties); the files made."""
    from shared.keys import write_new

    made = []
    for principal in SUPER_USERS + SCRAM_PRINCIPALS:
        path = password_path(settings, principal)
        if not path.exists() and write_new(path, secrets.token_urlsafe(32).encode()):
            made.append(path)
    properties = client_properties_path(settings)
    if not properties.exists():
        operator = read_password(password_path(settings, "operator"))
        text = ("# The operator's access to the local broker, for Kafka's console tools: --command-config <this file>.\n"
                "# It may read every topic and describe every consumer group, nothing more.\n"
                "security.protocol=SASL_PLAINTEXT\n"
                f"sasl.mechanism={MECHANISM}\n"
                "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="operator" password="{operator}";\n')
        if write_new(properties, text.encode()):
            made.append(properties)
    return made


def read_password(path: Path) -> str:
    """A password file's content, without its line end."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise CredentialsMissing(f"no Kafka password file at {path} (run `python -m shared.keys init`)") from None


def client_options(settings: Settings, principal: str) -> dict:
    """kafka-python keyword arguments for one principal: bootstrap servers and, unless the broker
    is plain (NRW_KAFKA_SECURITY_PROTOCOL=PLAINTEXT), its SASL login and TLS settings."""
    options = {"bootstrap_servers": settings.kafka_bootstrap}
    protocol = settings.kafka_security_protocol.upper()
    options["security_protocol"] = protocol
    if protocol.startswith("SASL_"):
        username = settings.kafka_sasl_username or principal
        if username in SUPER_USERS and username != principal:
            # A copied setting must not turn a service into a super user without a word.
            raise CredentialsMissing(f"refusing to log in to Kafka as the super user {username!r} for {principal!r}")
        if settings.kafka_sasl_password:
            password = settings.kafka_sasl_password
        else:
            password = read_password(settings.kafka_sasl_password_file or password_path(settings, username))
        options.update(sasl_mechanism=MECHANISM, sasl_plain_username=username, sasl_plain_password=password)
    if protocol.endswith("SSL") and settings.kafka_ssl_cafile:
        options["ssl_cafile"] = str(settings.kafka_ssl_cafile)
    return options


# --- rights ---------------------------------------------------------------------------------------

def acl_plan() -> set[tuple[str, str, str, str, str]]:
    """Every grant as (principal, resource type, pattern type, resource name, operation)."""
    grants = set()

    def topic(principal, name, *operations):
        grants.update((principal, "TOPIC", "LITERAL", name, op) for op in operations)

    for service in SERVICES:
        topic(service, TOPICS[service], "WRITE", "DESCRIBE")
        for source in CONSUMES[service]:
            topic(service, source, "READ", "DESCRIBE")
            topic(service, dead_letter_topic(source), "WRITE", "DESCRIBE")
        grants.add((service, "GROUP", "LITERAL", service, "READ"))
    grants |= dead_letter_tool_grants(TOPICS.values())
    for name in all_topics():
        topic("operator", name, "READ", "DESCRIBE")
    grants.add(("operator", "GROUP", "LITERAL", "*", "DESCRIBE"))
    grants.add(("operator", "GROUP", "PREFIXED", "operator", "READ"))
    return grants


def dead_letter_tool_grants(source_topics) -> set[tuple[str, str, str, str, str]]:
    """The dead-letter tool's rights over some source topics: read their dead letters and mark
    them replayed; read the source topic (a letter is sent back only if it is the very record the
    source holds at its place: a service that can write a dead-letter topic cannot make the tool
    publish what it wrote) and write it (the replay)."""
    grants = set()
    for source in source_topics:
        grants.update(("deadletters", "TOPIC", "LITERAL", source, op) for op in ("READ", "WRITE", "DESCRIBE"))
        grants.update(("deadletters", "TOPIC", "LITERAL", dead_letter_topic(source), op)
                      for op in ("READ", "WRITE", "DESCRIBE"))
    return grants


def grant(admin, grants) -> None:
    """Create these ACLs (logged in as admin); RuntimeError if the broker refuses one."""
    refused = admin.create_acls([_acl(g) for g in sorted(grants)])["failed"]
    if refused:
        raise RuntimeError(f"Kafka refused {len(refused)} of the ACLs: {refused[0]}")


def _acl(spec):
    from kafka.admin import ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern, ResourceType

    principal, resource, pattern, name, operation = spec
    return ACL(principal=f"User:{principal}", host="*", operation=ACLOperation[operation],
               permission_type=ACLPermissionType.ALLOW,
               resource_pattern=ResourcePattern(ResourceType[resource], name, ACLResourcePatternType[pattern]))


def _granted(acl) -> tuple[str, str, str, str, str]:
    principal = acl.principal.split(":", 1)[1] if acl.principal.startswith("User:") else acl.principal
    pattern = acl.resource_pattern
    return (principal, pattern.resource_type.name, pattern.pattern_type.name, pattern.resource_name,
            acl.operation.name)


def _is_plan_grant(acl, plan) -> bool:
    return acl.permission_type.name == "ALLOW" and acl.host == "*" and _granted(acl) in plan


def _covers_ours(acl) -> bool:
    """True if the grant's resource is one of ours (a topic or group of this system, the cluster,
    or a wildcard or prefix that covers one); on a shared cluster, others' grants are not ours to
    withdraw."""
    pattern = acl.resource_pattern
    kind, name = pattern.resource_type.name, pattern.resource_name
    names = set(all_topics()) if kind == "TOPIC" else set(SERVICES) | {"operator"} if kind == "GROUP" else None
    if kind == "CLUSTER":
        return True
    if names is None:
        return False
    if name == "*" or (pattern.pattern_type.name == "LITERAL" and name in names):
        return True
    return pattern.pattern_type.name == "PREFIXED" and any(n.startswith(name) for n in names)


def apply_rights(settings: Settings, admin) -> dict[str, int]:
    """Logged in as admin: set every SCRAM principal's credentials from its password file, grant
    the plan's ACLs and withdraw every other ALLOW on this system's topics, groups or the cluster
    (a right a newer version no longer gives, one given to `User:*` or to a principal nobody
    uses); a DENY an operator added (to lock out a compromised service) is kept. Idempotent; counts of what was done."""
    from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             ResourcePatternFilter, ResourceType, UserScramCredentialUpsertion)

    upserts = [UserScramCredentialUpsertion(principal, MECHANISM, read_password(password_path(settings, principal)),
                                            iterations=SCRAM_ITERATIONS)
               for principal in SCRAM_PRINCIPALS]
    failed = {user: error for user, error in admin.alter_user_scram_credentials(upserts).items() if error}
    if failed:
        raise RuntimeError(f"Kafka refused credentials for {', '.join(sorted(failed))}")
    everything = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                           permission_type=ACLPermissionType.ANY,
                           resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    existing, _ = admin.describe_acls(everything)  # raises the broker's error if it refuses
    plan = acl_plan()
    have = {_granted(a) for a in existing if _is_plan_grant(a, plan)}
    extra = [a for a in existing if a.permission_type.name == "ALLOW" and not _is_plan_grant(a, plan)
             and _granted(a)[0] not in SUPER_USERS and _covers_ours(a)]
    missing = sorted(plan - have)
    if missing:
        grant(admin, missing)
    if extra:
        admin.delete_acls([ACLFilter(principal=a.principal, host=a.host, operation=a.operation,
                                     permission_type=a.permission_type,
                                     resource_pattern=ResourcePatternFilter(a.resource_pattern.resource_type,
                                                                            a.resource_pattern.resource_name,
                                                                            a.resource_pattern.pattern_type))
                           for a in extra])
    return {"principals": len(upserts), "granted": len(missing), "withdrawn": len(extra)}
