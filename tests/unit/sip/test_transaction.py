"""Transaction state machines driven by a fake clock (RFC 3261 17, RFC 6026)."""

from __future__ import annotations

import itertools

import pytest

from gateway.sip.errors import TransactionUsageError
from gateway.sip.message import SipRequest, SipResponse, make_ack, make_cancel, make_request, make_response
from gateway.sip.timers import TimerConfig, TimerName
from gateway.sip.transaction import (
    Deliver,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Output,
    Send,
    Terminated,
    Timeout,
    TransactionState,
    TransportFailure,
    cancel_target_key,
    server_key_for_request,
    transaction_key_for_response,
)

S = TransactionState
Tx = (
    InviteClientTransaction
    | NonInviteClientTransaction
    | InviteServerTransaction
    | NonInviteServerTransaction
)


def request(method: str = "INVITE", branch: str = "z9hG4bKc1", host: str = "192.0.2.1") -> SipRequest:
    return make_request(
        method,
        "sip:+15551234567@trunk.example.com",
        from_="<sip:gw@example.org>;tag=ftag",
        to="<sip:+15551234567@trunk.example.com>",
        call_id="call-1@192.0.2.1",
        cseq=7,
        via=f"SIP/2.0/UDP {host}:5060;branch={branch};rport",
        route=["<sip:edge.example.com;lr>"],
    )


def reply(req: SipRequest, status: int, to_tag: str | None = "ttag") -> SipResponse:
    return make_response(req, status, to_tag=None if status == 100 else to_tag)


def state_of(tx: Tx) -> TransactionState:
    return tx.state


def advance(tx: Tx, until: float) -> list[tuple[float, Output]]:
    """Fire every timer up to ``until`` at its exact deadline, collecting timestamped outputs."""
    out: list[tuple[float, Output]] = []
    while (deadline := tx.next_deadline()) is not None and deadline <= until:
        tx.on_timer(deadline)
        out += [(deadline, o) for o in tx.pop_outputs()]
    return out


def sends(events: list[tuple[float, Output]]) -> list[float]:
    return [t for t, o in events if isinstance(o, Send)]


def intervals(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


# --------------------------------------------------------------------------- INVITE client


def test_ict_udp_retransmits_doubling_without_cap_then_timer_b() -> None:
    inv = request()
    tx = InviteClientTransaction(inv, reliable=False, config=TimerConfig(), now=0.0)
    assert state_of(tx) is S.CALLING
    tx.start(0.0)
    assert tx.pop_outputs() == [Send(inv)]
    events = advance(tx, 40.0)
    assert sends(events) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert intervals([0.0, *sends(events)]) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert all(o == Send(inv) for _, o in events if isinstance(o, Send))
    assert events[-2:] == [(32.0, Timeout(TimerName.B)), (32.0, Terminated())]
    assert state_of(tx) is S.TERMINATED and tx.next_deadline() is None


def test_ict_custom_timer_config() -> None:
    tx = InviteClientTransaction(request(), False, TimerConfig(t1=0.1, t2=1.0, t4=2.0), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    events = advance(tx, 10.0)
    assert sends(events) == pytest.approx([0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    assert events[-2][1] == Timeout(TimerName.B) and events[-2][0] == pytest.approx(6.4)


def test_ict_provisional_stops_retransmission_and_timer_b() -> None:
    inv = request()
    tx = InviteClientTransaction(inv, False, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    assert sends(advance(tx, 0.6)) == [0.5]
    ringing = reply(inv, 180)
    tx.receive(ringing, 0.7)
    assert tx.pop_outputs() == [Deliver(ringing)]
    assert state_of(tx) is S.PROCEEDING and tx.next_deadline() is None
    assert advance(tx, 300.0) == []
    progress = reply(inv, 183)
    tx.receive(progress, 5.0)
    assert tx.pop_outputs() == [Deliver(progress)] and state_of(tx) is S.PROCEEDING


def test_ict_non_2xx_generates_ack_and_repeats_it_while_completed() -> None:
    inv = request()
    tx = InviteClientTransaction(inv, False, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    busy = reply(inv, 486)
    tx.receive(busy, 1.0)
    out = tx.pop_outputs()
    assert len(out) == 2 and out[1] == Deliver(busy)
    assert isinstance(out[0], Send) and isinstance(out[0].message, SipRequest)
    ack = out[0].message
    assert ack.method == "ACK" and ack.uri == inv.uri
    assert ack.headers.get_all("Via") == [inv.headers.get("Via")]  # same branch
    assert ack.headers.get("From") == inv.headers.get("From") and ack.call_id == inv.call_id
    assert ack.cseq == (7, "ACK") and ack.to_tag == "ttag"
    assert ack.headers.get_all("Route") == inv.headers.get_all("Route")
    assert ack == make_ack(inv, busy)
    assert state_of(tx) is S.COMPLETED and tx.next_deadline() == 33.0  # Timer D = 32 s
    for t in (2.0, 4.0):
        tx.receive(busy, t)
        assert tx.pop_outputs() == [Send(ack)]  # ACK again, not passed up again
    assert advance(tx, 32.9) == []
    assert advance(tx, 33.0) == [(33.0, Terminated())]


def test_ict_non_2xx_after_provisional() -> None:
    inv = request()
    tx = InviteClientTransaction(inv, False, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.receive(reply(inv, 100), 0.1)
    tx.receive(reply(inv, 180), 0.2)
    tx.pop_outputs()
    declined = reply(inv, 603)
    tx.receive(declined, 9.0)
    out = tx.pop_outputs()
    assert [type(o) for o in out] == [Send, Deliver] and state_of(tx) is S.COMPLETED
    assert tx.last_response is declined


def test_ict_2xx_goes_to_accepted_and_passes_every_2xx_up_until_timer_m() -> None:
    inv = request()
    tx = InviteClientTransaction(inv, False, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    ok = reply(inv, 200, "fork1")
    tx.receive(ok, 2.0)
    assert tx.pop_outputs() == [Deliver(ok)]  # no ACK from the transaction for 2xx
    assert state_of(tx) is S.ACCEPTED and tx.next_deadline() == 34.0  # Timer M = 64*T1
    tx.receive(ok, 2.5)
    other_fork = reply(inv, 200, "fork2")
    tx.receive(other_fork, 3.0)
    assert tx.pop_outputs() == [Deliver(ok), Deliver(other_fork)]
    tx.receive(reply(inv, 180), 3.5)
    tx.receive(reply(inv, 500), 3.6)
    assert tx.pop_outputs() == []
    assert advance(tx, 100.0) == [(34.0, Terminated())]


def test_ict_reliable_has_no_retransmissions_and_zero_timer_d() -> None:
    inv = request()
    tx = InviteClientTransaction(inv, reliable=True, config=TimerConfig(), now=0.0)
    tx.start(0.0)
    assert tx.pop_outputs() == [Send(inv)]
    assert tx.next_deadline() == 32.0  # only Timer B
    busy = reply(inv, 486)
    tx.receive(busy, 1.0)
    out = tx.pop_outputs()
    assert [type(o) for o in out] == [Send, Deliver, Terminated]
    assert state_of(tx) is S.TERMINATED


def test_ict_reliable_timeout() -> None:
    tx = InviteClientTransaction(request(), True, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    assert advance(tx, 64.0) == [(32.0, Timeout(TimerName.B)), (32.0, Terminated())]


@pytest.mark.parametrize("prior", [None, 180, 486])
def test_ict_transport_error(prior: int | None) -> None:
    inv = request()
    tx = InviteClientTransaction(inv, False, TimerConfig(), 0.0)
    tx.start(0.0)
    if prior is not None:
        tx.receive(reply(inv, prior), 0.1)
    tx.pop_outputs()
    tx.transport_error(0.2)
    assert tx.pop_outputs() == [TransportFailure(), Terminated()]
    assert state_of(tx) is S.TERMINATED and tx.next_deadline() is None


def test_ict_late_timer_call_fires_once_and_rearms_from_now() -> None:
    tx = InviteClientTransaction(request(), False, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    tx.on_timer(2.0)
    assert [type(o) for o in tx.pop_outputs()] == [Send]
    assert tx.next_deadline() == 3.0


def test_client_usage_errors() -> None:
    inv = request()
    tx = InviteClientTransaction(inv, False, TimerConfig(), 0.0)
    with pytest.raises(TransactionUsageError):
        tx.receive(reply(inv, 180), 0.0)  # not started
    tx.start(0.0)
    with pytest.raises(TransactionUsageError):
        tx.start(0.0)
    with pytest.raises(TransactionUsageError):
        tx.receive(reply(request(branch="z9hG4bKother"), 180), 0.1)
    with pytest.raises(TransactionUsageError):
        InviteClientTransaction(request("OPTIONS"), False)
    with pytest.raises(TransactionUsageError):
        NonInviteClientTransaction(request("INVITE"), False)
    with pytest.raises(TransactionUsageError):
        InviteClientTransaction(request(branch="1234"), False)  # needs an RFC 3261 branch


def test_events_after_termination_are_ignored() -> None:
    inv = request()
    tx = InviteClientTransaction(inv, True, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.transport_error(0.1)
    tx.pop_outputs()
    tx.receive(reply(inv, 200), 0.2)
    tx.transport_error(0.3)
    tx.on_timer(100.0)
    assert tx.pop_outputs() == []


# --------------------------------------------------------------------------- non-INVITE client


def test_nict_udp_retransmits_capped_at_t2_then_timer_f() -> None:
    opt = request("OPTIONS")
    tx = NonInviteClientTransaction(opt, False, TimerConfig(), 0.0)
    assert state_of(tx) is S.TRYING
    tx.start(0.0)
    assert tx.pop_outputs() == [Send(opt)]
    events = advance(tx, 40.0)
    times = sends(events)
    assert intervals([0.0, *times]) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert times[-1] == 31.5
    assert events[-2:] == [(32.0, Timeout(TimerName.F)), (32.0, Terminated())]


def test_nict_provisional_keeps_retransmitting_at_t2() -> None:
    bye = request("BYE")
    tx = NonInviteClientTransaction(bye, False, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    trying = reply(bye, 100)
    tx.receive(trying, 0.2)
    assert tx.pop_outputs() == [Deliver(trying)] and state_of(tx) is S.PROCEEDING
    events = advance(tx, 13.0)
    assert sends(events) == [0.5, 4.5, 8.5, 12.5]


def test_nict_final_response_then_timer_k_absorbs_retransmissions() -> None:
    reg = request("REGISTER")
    tx = NonInviteClientTransaction(reg, False, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    challenge = reply(reg, 401)
    tx.receive(challenge, 0.3)
    assert tx.pop_outputs() == [Deliver(challenge)]
    assert state_of(tx) is S.COMPLETED and tx.next_deadline() == pytest.approx(5.3)  # Timer K = T4
    tx.receive(challenge, 1.0)
    tx.receive(reply(reg, 200), 1.1)
    assert tx.pop_outputs() == []
    events = advance(tx, 6.0)
    assert [o for _, o in events] == [Terminated()] and events[0][0] == pytest.approx(5.3)


def test_nict_reliable() -> None:
    opt = request("OPTIONS")
    tx = NonInviteClientTransaction(opt, True, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    assert tx.next_deadline() == 32.0  # Timer F only, no Timer E
    ok = reply(opt, 200)
    tx.receive(ok, 0.1)
    assert tx.pop_outputs() == [Deliver(ok), Terminated()]


def test_nict_timeout_in_proceeding_and_transport_error() -> None:
    opt = request("OPTIONS")
    tx = NonInviteClientTransaction(opt, True, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.receive(reply(opt, 100), 0.1)
    tx.pop_outputs()
    assert advance(tx, 40.0)[-2:] == [(32.0, Timeout(TimerName.F)), (32.0, Terminated())]
    other = NonInviteClientTransaction(opt, False, TimerConfig(), 0.0)
    other.start(0.0)
    other.pop_outputs()
    other.transport_error(0.0)
    assert other.pop_outputs() == [TransportFailure(), Terminated()]


# --------------------------------------------------------------------------- INVITE server


def test_ist_sends_100_trying_and_resends_latest_provisional() -> None:
    inv = request(branch="z9hG4bKremote")
    tx = InviteServerTransaction(inv, False, TimerConfig(), 0.0)
    assert state_of(tx) is S.PROCEEDING
    tx.start(0.0)
    out = tx.pop_outputs()
    assert out[0] == Deliver(inv)
    assert isinstance(out[1], Send) and isinstance(out[1].message, SipResponse)
    trying = out[1].message
    assert trying.status == 100 and trying.to_tag is None
    assert trying.headers.get_all("Via") == inv.headers.get_all("Via") and trying.cseq == inv.cseq
    tx.receive(inv, 0.5)
    assert tx.pop_outputs() == [Send(trying)]
    ringing = reply(inv, 180)
    tx.send_response(ringing, 1.0)
    assert tx.pop_outputs() == [Send(ringing)] and state_of(tx) is S.PROCEEDING
    tx.receive(inv, 1.5)
    assert tx.pop_outputs() == [Send(ringing)]
    assert tx.next_deadline() is None


def test_ist_trying_delay_only_when_tu_is_slow() -> None:
    inv = request(branch="z9hG4bKremote")
    quick = InviteServerTransaction(inv, False, TimerConfig(), 0.0, trying_delay=0.2)
    quick.start(0.0)
    assert quick.pop_outputs() == [Deliver(inv)] and quick.next_deadline() == 0.2
    busy = reply(inv, 486)
    quick.send_response(busy, 0.1)
    assert quick.pop_outputs() == [Send(busy)]
    assert advance(quick, 0.3) == []  # no 100 once the TU has answered

    slow = InviteServerTransaction(inv, False, TimerConfig(), 0.0, trying_delay=0.2)
    slow.start(0.0)
    slow.pop_outputs()
    events = advance(slow, 1.0)
    assert len(events) == 1 and events[0][0] == 0.2
    sent = events[0][1]
    assert isinstance(sent, Send) and isinstance(sent.message, SipResponse) and sent.message.status == 100

    early = InviteServerTransaction(inv, False, TimerConfig(), 0.0, trying_delay=0.2)
    early.start(0.0)
    early.pop_outputs()
    early.receive(inv, 0.1)  # a retransmission shows the caller is waiting: answer at once
    statuses = [
        o.message.status
        for o in early.pop_outputs()
        if isinstance(o, Send) and isinstance(o.message, SipResponse)
    ]
    assert statuses == [100]
    assert advance(early, 1.0) == []

    never = InviteServerTransaction(inv, False, TimerConfig(), 0.0, trying_delay=None)
    never.start(0.0)
    never.receive(inv, 0.6)
    assert never.pop_outputs() == [Deliver(inv)] and never.next_deadline() is None


def test_ist_non_2xx_retransmitted_by_timer_g_until_ack() -> None:
    inv = request(branch="z9hG4bKremote")
    tx = InviteServerTransaction(inv, False, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    busy = reply(inv, 486)
    tx.send_response(busy, 1.0)
    assert tx.pop_outputs() == [Send(busy)] and state_of(tx) is S.COMPLETED
    events = advance(tx, 13.0)
    assert intervals([1.0, *sends(events)]) == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert all(o == Send(busy) for _, o in events)
    tx.receive(inv, 13.1)  # retransmitted INVITE -> final again
    assert tx.pop_outputs() == [Send(busy)]
    tx.send_response(reply(inv, 200), 13.2)  # the TU cannot change its mind
    assert tx.pop_outputs() == []
    ack = make_ack(inv, busy)
    assert server_key_for_request(ack) == tx.key
    tx.receive(ack, 13.5)
    assert tx.pop_outputs() == [] and state_of(tx) is S.CONFIRMED
    assert tx.next_deadline() == pytest.approx(18.5)  # Timer I = T4
    tx.receive(ack, 14.0)  # ACK retransmission absorbed
    tx.receive(inv, 14.1)
    assert tx.pop_outputs() == []
    events = advance(tx, 20.0)
    assert [o for _, o in events] == [Terminated()] and events[0][0] == pytest.approx(18.5)


def test_ist_timer_h_without_ack() -> None:
    inv = request(branch="z9hG4bKremote")
    tx = InviteServerTransaction(inv, False, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.send_response(reply(inv, 404), 0.0)
    tx.pop_outputs()
    events = advance(tx, 40.0)
    assert events[-2:] == [(32.0, Timeout(TimerName.H)), (32.0, Terminated())]
    assert max(sends(events)) < 32.0


def test_ist_reliable_no_timer_g_and_zero_timer_i() -> None:
    inv = request(branch="z9hG4bKremote")
    tx = InviteServerTransaction(inv, True, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    busy = reply(inv, 486)
    tx.send_response(busy, 0.0)
    tx.pop_outputs()
    assert tx.next_deadline() == 32.0  # Timer H only
    tx.receive(make_ack(inv, busy), 0.1)
    assert tx.pop_outputs() == [Terminated()]


def test_ist_2xx_accepted_state() -> None:
    inv = request(branch="z9hG4bKremote")
    tx = InviteServerTransaction(inv, False, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    ok = reply(inv, 200)
    tx.send_response(ok, 1.0)
    assert tx.pop_outputs() == [Send(ok)]
    assert state_of(tx) is S.ACCEPTED and tx.next_deadline() == 33.0  # Timer L = 64*T1
    tx.receive(inv, 1.2)  # INVITE retransmission absorbed, not a new request
    assert tx.pop_outputs() == []
    tx.send_response(ok, 1.5)  # the TU (dialog layer) retransmits its 2xx
    assert tx.pop_outputs() == [Send(ok)]
    ack = make_request(
        "ACK",
        inv.uri,
        from_=inv.headers.get("From") or "",
        to=ok.headers.get("To") or "",
        call_id=inv.call_id,
        cseq=7,
        via=inv.headers.get("Via") or "",
    )
    tx.receive(ack, 2.0)
    assert tx.pop_outputs() == [Deliver(ack)]
    tx.transport_error(2.5)
    assert tx.pop_outputs() == [TransportFailure()] and state_of(tx) is S.ACCEPTED
    assert advance(tx, 40.0) == [(33.0, Terminated())]


def test_ist_transport_error() -> None:
    inv = request(branch="z9hG4bKremote")
    tx = InviteServerTransaction(inv, False, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    tx.transport_error(0.0)
    assert tx.pop_outputs() == [TransportFailure(), Terminated()]
    completed = InviteServerTransaction(inv, False, TimerConfig(), 0.0)
    completed.start(0.0)
    completed.send_response(reply(inv, 500), 0.0)
    completed.pop_outputs()
    completed.transport_error(0.6)
    assert completed.pop_outputs() == [TransportFailure(), Terminated()]


def test_server_usage_errors() -> None:
    inv = request(branch="z9hG4bKremote")
    tx = InviteServerTransaction(inv, False, TimerConfig(), 0.0)
    with pytest.raises(TransactionUsageError):
        tx.send_response(reply(inv, 180), 0.0)  # not started
    tx.start(0.0)
    with pytest.raises(TransactionUsageError):
        tx.receive(request("BYE"), 0.0)
    with pytest.raises(TransactionUsageError):
        tx.send_response(reply(request("BYE"), 200), 0.0)
    with pytest.raises(TransactionUsageError):
        NonInviteServerTransaction(request("ACK"), False)
    with pytest.raises(TransactionUsageError):
        InviteServerTransaction(request("BYE"), False)


# --------------------------------------------------------------------------- non-INVITE server


def test_nist_states_and_timer_j() -> None:
    bye = request("BYE", branch="z9hG4bKremote")
    tx = NonInviteServerTransaction(bye, False, TimerConfig(), 0.0)
    assert state_of(tx) is S.TRYING
    tx.start(0.0)
    assert tx.pop_outputs() == [Deliver(bye)]
    tx.receive(bye, 0.5)  # nothing to resend yet
    assert tx.pop_outputs() == []
    trying = reply(bye, 100)
    tx.send_response(trying, 0.6)
    assert tx.pop_outputs() == [Send(trying)] and state_of(tx) is S.PROCEEDING
    tx.receive(bye, 1.5)
    assert tx.pop_outputs() == [Send(trying)]
    ok = reply(bye, 200)
    tx.send_response(ok, 2.0)
    assert tx.pop_outputs() == [Send(ok)] and state_of(tx) is S.COMPLETED
    assert tx.next_deadline() == 34.0  # Timer J = 64*T1
    tx.receive(bye, 3.0)
    assert tx.pop_outputs() == [Send(ok)]
    tx.send_response(reply(bye, 500), 3.5)
    assert tx.pop_outputs() == []
    assert advance(tx, 40.0) == [(34.0, Terminated())]


def test_nist_reliable_and_transport_error() -> None:
    opt = request("OPTIONS", branch="z9hG4bKremote")
    tx = NonInviteServerTransaction(opt, True, TimerConfig(), 0.0)
    tx.start(0.0)
    tx.pop_outputs()
    ok = reply(opt, 200)
    tx.send_response(ok, 0.1)
    assert tx.pop_outputs() == [Send(ok), Terminated()]
    failing = NonInviteServerTransaction(opt, False, TimerConfig(), 0.0)
    failing.start(0.0)
    failing.send_response(reply(opt, 200), 0.1)
    failing.pop_outputs()
    failing.transport_error(0.2)
    assert failing.pop_outputs() == [TransportFailure(), Terminated()]


# --------------------------------------------------------------------------- matching


def test_client_key_matches_responses() -> None:
    inv = request(branch="z9hG4bKmatch")
    tx = InviteClientTransaction(inv, False)
    assert tx.key == ("z9hG4bKmatch", "INVITE")
    assert transaction_key_for_response(reply(inv, 180)) == tx.key
    cancel = make_cancel(inv)
    # the CANCEL shares the branch but is its own transaction (17.1.3: CSeq method differs)
    assert transaction_key_for_response(reply(cancel, 200)) == ("z9hG4bKmatch", "CANCEL")


def test_server_keys() -> None:
    inv = request(branch="z9hG4bKsrv", host="Host.Example.COM")
    key = server_key_for_request(inv)
    assert key == ("z9hG4bKsrv", "host.example.com:5060", "INVITE")
    assert server_key_for_request(make_ack(inv, reply(inv, 486))) == key
    assert server_key_for_request(make_cancel(inv)) == ("z9hG4bKsrv", "host.example.com:5060", "CANCEL")
    assert cancel_target_key(make_cancel(inv)) == key
    other_sender = request(branch="z9hG4bKsrv", host="192.0.2.99")
    assert server_key_for_request(other_sender) != key
    ack_2xx = make_ack(inv, reply(inv, 200))
    ack_2xx.headers.set("Via", "SIP/2.0/UDP host.example.com:5060;branch=z9hG4bKnew")
    assert server_key_for_request(ack_2xx) != key  # 2xx ACK is a transaction of its own


def test_rfc2543_server_keys() -> None:
    legacy = request(branch="abc")
    key = server_key_for_request(legacy)
    assert key[0].startswith("rfc2543|") and key[2] == "INVITE"
    assert server_key_for_request(request(branch="abc")) == key
    assert server_key_for_request(make_ack(legacy, reply(legacy, 486))) == key
    tx = InviteServerTransaction(legacy, False)
    assert tx.key == key


def test_timer_config_values() -> None:
    cfg = TimerConfig()
    assert (cfg.t1, cfg.t2, cfg.t4) == (0.5, 4.0, 5.0)
    assert cfg.timer_b() == cfg.timer_f() == cfg.timer_h() == cfg.timer_l() == cfg.timer_m() == 32.0
    assert cfg.timer_d(False) == 32.0 and cfg.timer_d(True) == 0.0
    assert cfg.timer_i(False) == cfg.timer_k(False) == 5.0
    assert cfg.timer_i(True) == cfg.timer_j(True) == cfg.timer_k(True) == 0.0
    assert cfg.timer_j(False) == 32.0
    with pytest.raises(ValueError):
        TimerConfig(t1=0.0)
    with pytest.raises(ValueError):
        TimerConfig(t1=5.0, t2=4.0)
