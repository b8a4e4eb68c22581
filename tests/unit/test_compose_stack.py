"""The compose stack's handle turns the end-to-end tests' stop/start/kill into the right compose
commands, and knows a killed container has ended (no Docker here: compose is a fake)."""

from __future__ import annotations

import signal

import pytest

from tests.compose.compose_stack import ComposeStack


class FakeCompose:
    """Records compose subcommands; `ps` answers with one container id."""

    def __init__(self):
        self.commands: list[str] = []

    def execute(self, subcommand: str) -> bytes:
        self.commands.append(subcommand)
        return b"c0ffee\n" if subcommand.startswith("ps ") else b""


class ScriptedStack(ComposeStack):
    """Container states from a script instead of `docker inspect`: one (running, started_at) per look."""

    def __init__(self, states):
        super().__init__(FakeCompose(), urls={}, bootstrap="127.0.0.1:1")
        self.states = list(states)

    def _state(self, name):
        self.compose.execute(f"ps --all --quiet {self._services([name])}")
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


def test_start_and_stop_name_compose_services():
    stack = ScriptedStack([(True, "t0")])
    stack.stop("kafka")
    stack.start("kafka")
    stack.stop("ferretdb", timeout_s=5)
    stack.stop()
    stack.start()
    assert stack.compose.commands == ["stop --timeout 20 kafka", "start kafka", "stop --timeout 5 mongo",
                                      "stop --timeout 20", "start"]


def test_a_kill_sends_sigkill_and_waits_for_the_container_to_end():
    stack = ScriptedStack([(True, "t0"), (True, "t0"), (True, "t0"), (False, "t0")])
    stack.kill("case-consumer")
    assert "kill --signal SIGKILL case-consumer" in stack.compose.commands
    assert stack.states == [(False, "t0")]  # looked until it had ended


def test_a_container_the_restart_policy_started_again_counts_as_ended():
    stack = ScriptedStack([(True, "t0"), (True, "t1")])
    stack.signal("case-consumer", signal.SIGKILL)
    stack.wait_stopped("case-consumer", timeout_s=2)


def test_a_container_that_never_ends_times_out_by_name():
    stack = ScriptedStack([(True, "t0")])
    stack.signal("case-consumer", signal.SIGTERM)
    assert "kill --signal SIGTERM case-consumer" in stack.compose.commands
    with pytest.raises(TimeoutError, match="case-consumer"):
        stack.wait_stopped("case-consumer", timeout_s=0.5)
