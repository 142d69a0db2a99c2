"""Actor wiring (StubBroker: no worker, no Redis)."""

from dramatiq import Message
from dramatiq.brokers.stub import StubBroker

from send_pipeline.actors import send_message
from shared.errors import PermanentError


def test_send_message_runs_on_the_send_queue_and_never_retries_a_permanent_error():
    assert send_message.actor_name == "send_message"
    assert send_message.queue_name == "send"
    assert send_message.options["max_retries"] == 8
    assert send_message.options["throws"] == (PermanentError,)


def test_a_send_job_carries_only_the_message_id():
    stub = StubBroker()
    stub.declare_queue("send")
    job = send_message.message(42)
    stub.enqueue(job)
    queued = Message.decode(stub.queues["send"].get_nowait())
    assert (queued.actor_name, queued.args, queued.kwargs) == ("send_message", (42,), {})
