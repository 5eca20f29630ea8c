"""open_state: the composition the server uses, with a stub wire, and nothing else."""

from __future__ import annotations

from chatgate.domain import Message, ModelConfig
from chatgate.services.chat import ChatInput
from chatgate.state import AppState
from tests.services.conftest import Services


def test_a_chat_call_through_the_services_is_logged(services: Services) -> None:
    async def work(state: AppState) -> str:
        outcome = await state.chat.chat(
            services.acme,
            ChatInput(
                config=ModelConfig(provider="stub", model="m"),
                messages=(Message("user", "hi"),),
                project="p",
            ),
        )
        assert outcome.samples[0].output == "hello"
        return outcome.log_ids[0]

    log_id = services.run(work)
    store = services.store()
    try:
        assert store.logs.log(services.acme.org_id, log_id) is not None
        assert store.logs.log(services.globex.org_id, log_id) is None
    finally:
        store.close()
    assert [c.config.model for c in services.wire.calls] == ["m"]
