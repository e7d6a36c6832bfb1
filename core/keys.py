"""Every Redis key Jobcast uses, in one place, so that names never drift between modules.

All keys of one broadcast share the hash tag `{b:ID}` so that a Redis Cluster would keep
them in one slot (MULTI/EXEC and scripts across them stay legal).
"""

from __future__ import annotations

PREFIX = "jc"


def broadcast(bid: str) -> str:
    """Hash with a broadcast's fields."""
    return f"{PREFIX}:{{b:{bid}}}"


BROADCAST_INDEX = f"{PREFIX}:broadcasts"  # zset of broadcast ids scored by creation time


def events(bid: str) -> str:
    """The broadcast's capped stream of public events; entry id == event seq. (Streams written
    before host-only events had their own stream hold some of those too, marked `a` = `h`.)"""
    return f"{PREFIX}:{{b:{bid}}}:events"


def host_events(bid: str) -> str:
    """The broadcast's capped stream of host-only events, capped on its own so that a burst of
    them never shortens the viewers' history; its ids come from the same sequence."""
    return f"{PREFIX}:{{b:{bid}}}:events:h"


def event_last(bid: str) -> str:
    """String: the last seq handed out in the broadcast, whichever stream it went to; the next
    one is drawn above it, so seqs are unique and increasing across both streams."""
    return f"{PREFIX}:{{b:{bid}}}:events:last"


def channel(bid: str, audience: str) -> str:
    """Pub/sub channel: audience 'p' (everyone) or 'h' (hosts only)."""
    return f"{PREFIX}:{{b:{bid}}}:ch:{audience}"


def presence(bid: str) -> str:
    """Hash: process id -> 'count:unix_ms' of that process's local viewers."""
    return f"{PREFIX}:{{b:{bid}}}:presence"


def report_events(bid: str) -> str:
    """Uncapped stream: a copy of the broadcast's events of the types the event report counts
    (openings/report.py REPORT_TYPES), under the same ids, so no cap loses them."""
    return f"{PREFIX}:{{b:{bid}}}:events:report"


def report_state(bid: str) -> str:
    """Hash {cursor: the last seq copied into report_events, gap: the first seq kept after a
    cap trimmed events before they were copied (absent: nothing lost)}."""
    return f"{PREFIX}:{{b:{bid}}}:events:report:state"


def audience_seen(bid: str) -> str:
    """Set of viewer ids seen on a socket of the broadcast (audience.sample `unique`)."""
    return f"{PREFIX}:{{b:{bid}}}:audience:seen"


def audience_card(bid: str) -> str:
    """Set of viewer ids seen on a socket while a card was pinned (audience.sample `card`)."""
    return f"{PREFIX}:{{b:{bid}}}:audience:card"


def audience_tick(bid: str) -> str:
    """Short-lived lock: one process writes the broadcast's audience.sample per interval."""
    return f"{PREFIX}:{{b:{bid}}}:audience:tick"


def stream_key(bid: str) -> str:
    """Hash {hash: sha256 of the WHIP stream key, created_at: unix ms}."""
    return f"{PREFIX}:{{b:{bid}}}:streamkey"


def ingest(bid: str) -> str:
    """Hash describing the live WHIP session (session, process, state, codecs...); expires
    unless the owning process keeps refreshing it, so a dead process frees the broadcast."""
    return f"{PREFIX}:{{b:{bid}}}:ingest"


def media_viewers(bid: str) -> str:
    """Hash: process -> "count:unix_ms" of its WebRTC (WHEP) viewers of the broadcast."""
    return f"{PREFIX}:{{b:{bid}}}:media:viewers"


def media_session(sid: str) -> str:
    """String: the process that holds WHIP/WHEP session `sid` (for DELETE on another worker)."""
    return f"{PREFIX}:media:session:{sid}"


# Pub/sub channel every process with media listens on: {"op", "sid", ...} control messages.
MEDIA_CONTROL = f"{PREFIX}:media:control"


def user(username: str) -> str:
    return f"{PREFIX}:user:{username}"


USER_INDEX = f"{PREFIX}:users"


def session(token: str) -> str:
    return f"{PREFIX}:session:{token}"


def rate(bucket: str) -> str:
    return f"{PREFIX}:rate:{bucket}"


# -- openings and applications (openings/) ---------------------------------------------------

OPENING_OWNER = f"{PREFIX}:opening-owner"  # hash: opening id -> broadcast id


def openings(bid: str) -> str:
    """Hash: opening id -> the opening as JSON (every status)."""
    return f"{PREFIX}:{{b:{bid}}}:openings"


def lineup(bid: str) -> str:
    """List: the broadcast's opening ids in presentation order."""
    return f"{PREFIX}:{{b:{bid}}}:lineup"


def pinned(bid: str) -> str:
    """Hash {opening_id, at}: the card being presented now (absent: none)."""
    return f"{PREFIX}:{{b:{bid}}}:pinned"


def pin_history(bid: str) -> str:
    """List of JSON {opening_id, at}: every pin in order, the chapters of the replay (capped)."""
    return f"{PREFIX}:{{b:{bid}}}:pin-history"


def application(bid: str, aid: str) -> str:
    """Hash with one application's fields (personal data: hosts only)."""
    return f"{PREFIX}:{{b:{bid}}}:app:{aid}"


def applications(bid: str) -> str:
    """Zset: application id -> created unix ms, every application of the broadcast."""
    return f"{PREFIX}:{{b:{bid}}}:apps"


def opening_applications(bid: str, oid: str) -> str:
    """Zset: application id -> created unix ms, for one opening (ZCARD is its count)."""
    return f"{PREFIX}:{{b:{bid}}}:op:{oid}:apps"


def opening_phones(bid: str, oid: str) -> str:
    """Hash: normalised phone -> application id, as stored when one application per phone and
    opening was kept. Read once per phone to move that application into `phone_applications`."""
    return f"{PREFIX}:{{b:{bid}}}:op:{oid}:phones"


def phone_applications(bid: str, oid: str, digest: str) -> str:
    """Zset: application id -> created unix ms, every application to the opening with one
    phone number. `digest` names the number (a hash, to keep numbers out of key names)."""
    return f"{PREFIX}:{{b:{bid}}}:op:{oid}:phone:{digest}"


def viewer_applied(bid: str, vid: str) -> str:
    """Hash: opening id -> application id, what this viewer applied to in the broadcast."""
    return f"{PREFIX}:{{b:{bid}}}:viewer:{vid}:applied"


def idempotency(bid: str, vid: str, key: str) -> str:
    """String 'fingerprint application-id' for one Idempotency-Key (older entries carry a
    third field, a duplicate flag, which is ignored)."""
    return f"{PREFIX}:{{b:{bid}}}:idem:{vid}:{key}"


def apply_rate(bid: str, who: str, window: int) -> str:
    """Counter of application attempts by `who` ('v:ID', 'ip:ADDR', or 'p:DIGEST:ADDR' for a
    phone number at an address); it expires `window` seconds after the first attempt (a fixed
    window per applicant)."""
    return f"{PREFIX}:{{b:{bid}}}:rl:{who}:{window}"


# -- chat, questions and moderation (chat/) --------------------------------------------------


def chat_seq(bid: str) -> str:
    """Counter: the last chat message id (ids are small integers, in posting order)."""
    return f"{PREFIX}:{{b:{bid}}}:chat:seq"


def chat_messages(bid: str) -> str:
    """Hash: message id -> message JSON, for the last `chat.KEEP` approved messages."""
    return f"{PREFIX}:{{b:{bid}}}:chat:msgs"


def chat_ids(bid: str) -> str:
    """List of approved message ids, oldest first, capped; what falls off leaves chat_messages."""
    return f"{PREFIX}:{{b:{bid}}}:chat:ids"


def chat_recent(bid: str) -> str:
    """List of visible (approved, not hidden) message ids, oldest first, capped."""
    return f"{PREFIX}:{{b:{bid}}}:chat:recent"


def chat_hidden(bid: str) -> str:
    """Hash: hidden message id -> who hid it."""
    return f"{PREFIX}:{{b:{bid}}}:chat:hidden"


def review(bid: str) -> str:
    """Zset: held item ('m:ID' message or 'q:ID' question) -> held at unix ms."""
    return f"{PREFIX}:{{b:{bid}}}:review"


def review_item(bid: str, member: str) -> str:
    """String: the held item's JSON, author included (WATCHed while it is decided)."""
    return f"{PREFIX}:{{b:{bid}}}:review:{member}"


def question_seq(bid: str) -> str:
    return f"{PREFIX}:{{b:{bid}}}:qa:seq"


def question(bid: str, qid: str) -> str:
    """Hash with one question's fields (status held/open/answered, answer, hidden...)."""
    return f"{PREFIX}:{{b:{bid}}}:qa:q:{qid}"


def question_voters(bid: str, qid: str) -> str:
    """Set of viewer ids that upvoted the question before votes were counted per address
    (each still counts one; withdrawing removes it)."""
    return f"{PREFIX}:{{b:{bid}}}:qa:q:{qid}:voters"


def question_voter_addrs(bid: str, qid: str) -> str:
    """Hash: viewer id that upvoted the question -> the address (IPv6: its /64) it voted from."""
    return f"{PREFIX}:{{b:{bid}}}:qa:q:{qid}:va"


def question_addr_votes(bid: str, qid: str) -> str:
    """Hash: address -> how many viewers voted for the question from it."""
    return f"{PREFIX}:{{b:{bid}}}:qa:q:{qid}:av"


def question_votes(bid: str) -> str:
    """Zset: approved question id -> vote count."""
    return f"{PREFIX}:{{b:{bid}}}:qa:votes"


def question_hidden(bid: str) -> str:
    """Set of hidden question ids."""
    return f"{PREFIX}:{{b:{bid}}}:qa:hidden"


def question_dirty(bid: str) -> str:
    """Set of question ids whose vote count changed since the last `question.votes`."""
    return f"{PREFIX}:{{b:{bid}}}:qa:dirty"


def question_tick(bid: str) -> str:
    """Short-lived lock: one process publishes `question.votes` per interval."""
    return f"{PREFIX}:{{b:{bid}}}:qa:tick"


def poll_seq(bid: str) -> str:
    return f"{PREFIX}:{{b:{bid}}}:poll:seq"


def poll_current(bid: str) -> str:
    """String: the id of the poll viewers see (open, or closed with its results)."""
    return f"{PREFIX}:{{b:{bid}}}:poll:current"


def poll(bid: str, pid: str) -> str:
    """Hash: one poll's question, options (JSON), kind, status, times, option count `n`."""
    return f"{PREFIX}:{{b:{bid}}}:poll:p:{pid}"


def poll_choices(bid: str, pid: str) -> str:
    """Hash: viewer id -> the option index it chose."""
    return f"{PREFIX}:{{b:{bid}}}:poll:p:{pid}:choices"


def poll_counts(bid: str, pid: str) -> str:
    """Hash: option index -> votes."""
    return f"{PREFIX}:{{b:{bid}}}:poll:p:{pid}:counts"


def poll_tick(bid: str) -> str:
    """Short-lived lock: at most one `poll.results` per interval."""
    return f"{PREFIX}:{{b:{bid}}}:poll:tick"


def poll_dirty(bid: str) -> str:
    """String: the id of a poll whose totals changed since its last `poll.results`."""
    return f"{PREFIX}:{{b:{bid}}}:poll:dirty"


def question_highlight(bid: str) -> str:
    """String: the highlighted question id."""
    return f"{PREFIX}:{{b:{bid}}}:qa:highlight"


def mod_bans(bid: str) -> str:
    """Hash: banned viewer id -> JSON {ip, at, by}."""
    return f"{PREFIX}:{{b:{bid}}}:mod:bans"


def mod_ban_ips(bid: str) -> str:
    """Hash: banned IP -> the viewer id whose ban covers it."""
    return f"{PREFIX}:{{b:{bid}}}:mod:banips"


def mod_mutes(bid: str) -> str:
    """Hash: timed-out viewer id -> until unix ms (expired fields are pruned lazily)."""
    return f"{PREFIX}:{{b:{bid}}}:mod:mutes"


def mod_words(bid: str) -> str:
    """Set of blocked words, normalised (NFKC, casefolded, no spaces)."""
    return f"{PREFIX}:{{b:{bid}}}:mod:words"


def staff_names(bid: str) -> str:
    """Set of the confusable skeletons of names hosts and moderators chose in the broadcast
    (viewers may not take them)."""
    return f"{PREFIX}:{{b:{bid}}}:names:staff"


def chat_open_after_end(bid: str) -> str:
    """String '1' while the host keeps chat and questions open after the broadcast ends
    (absent: they close with it)."""
    return f"{PREFIX}:{{b:{bid}}}:chat:after_end"


def chat_pinned(bid: str) -> str:
    """String: the message JSON pinned above the chat (absent: none)."""
    return f"{PREFIX}:{{b:{bid}}}:chat:pinned"


def mod_slow(bid: str) -> str:
    """String: slow mode interval in seconds (absent: off)."""
    return f"{PREFIX}:{{b:{bid}}}:mod:slow"


def mod_slow_viewer(bid: str, vid: str) -> str:
    """Expiring marker: this viewer posted within the slow-mode interval."""
    return f"{PREFIX}:{{b:{bid}}}:mod:slow:{vid}"


def chat_bucket(bid: str, who: str) -> str:
    """Hash {t: tokens, s: stamp ms}: the chat token bucket of 'v:ID' or 'ip:ADDR'."""
    return f"{PREFIX}:{{b:{bid}}}:chat:tb:{who}"


def viewer_ips(bid: str) -> str:
    """Hash: viewer id -> the IP it last posted from (so a ban can cover the address)."""
    return f"{PREFIX}:{{b:{bid}}}:chat:ips"


# Pub/sub channel every process listens on: {"bid", "viewer_id"} -> close that viewer's sockets.
CHAT_KICK = f"{PREFIX}:chat:kick"

# Stream: the outbox of notices to applicants (core/notices.py), read by the notifier.
NOTICES = f"{PREFIX}:notices"

# -- the notifier (web/runtime/notifier.py): retries, dead letters, delivered ids -------------

# Zset: notice id -> when its next attempt is due (unix ms); a process taking one moves it
# to the end of its lease, so a crashed process's retry falls due again.
NOTIFIER_RETRY = f"{PREFIX}:notifier:retry"
# Hash: notice id -> JSON {notice, attempts, error} of each notice in NOTIFIER_RETRY.
NOTIFIER_RETRY_DATA = f"{PREFIX}:notifier:retry:data"
# List of JSON {notice, attempts, error, failed_at}, newest first, capped: the dead letters.
NOTIFIER_DEAD = f"{PREFIX}:notifier:dead"


def notifier_done(nid: str) -> str:
    """Expiring marker: notice `nid` was delivered (a 2xx); it is not sent again."""
    return f"{PREFIX}:notifier:done:{nid}"


def notifier_lock(nid: str) -> str:
    """Expiring lock: one process is sending notice `nid` now."""
    return f"{PREFIX}:notifier:lock:{nid}"


# Pub/sub channel every process listens on: {"viewer_id", "bid"?, "event"} -> that viewer's
# own sockets only (web/realtime/private.py). Never logged: no replay, no other viewer.
VIEWER_PRIVATE = f"{PREFIX}:viewer:private"


# -- interviews (openings/interviews.py) -----------------------------------------------------


def interview_slots(bid: str, oid: str) -> str:
    """Hash: slot id -> slot JSON {id, opening_id, start, duration, place, link, capacity}."""
    return f"{PREFIX}:{{b:{bid}}}:iv:op:{oid}:slots"


def interview_seats(bid: str, sid: str) -> str:
    """Zset: application id -> booked unix ms, the bookings of one slot (ZCARD: seats taken)."""
    return f"{PREFIX}:{{b:{bid}}}:iv:slot:{sid}:seats"


def interview_bookings(bid: str) -> str:
    """Hash: application id -> the slot id it booked (one booking per application)."""
    return f"{PREFIX}:{{b:{bid}}}:iv:bookings"


def interview_invites(bid: str) -> str:
    """Hash: application id -> opening id, the applications invited to choose a slot."""
    return f"{PREFIX}:{{b:{bid}}}:iv:invites"


# Hash: application id -> broadcast id of every invited application (/api/me/interviews/{aid}
# names no broadcast).
INTERVIEW_APPLICATIONS = f"{PREFIX}:iv:apps"

# Zset: 'bid/aid/sid' -> the slot's start (unix ms), each booking whose reminder is not sent;
# a scheduler claims a member with ZREM inside the script that queues its notice.
INTERVIEW_REMINDERS = f"{PREFIX}:iv:reminders"


def viewer_interviews(vid: str) -> str:
    """Set of 'bid/aid': the invited applications made from this viewer id."""
    return f"{PREFIX}:viewer:{vid}:interviews"


def viewer_owned(vid: str) -> str:
    """Set of 'bid/aid': applications this viewer id may act on besides those it sent itself
    (another device of the applicant, linked by confirming the phone number)."""
    return f"{PREFIX}:viewer:{vid}:owned"


def reports(bid: str, oid: str, part: str) -> str:
    """An opening's viewer reports (openings/reports.py): `part` is `viewers` (hash viewer id
    -> address group), `addrs` (hash address group -> reporters), `reasons` (hash reason ->
    count), `notes` (list of the latest notes, capped) or `meta` (hash: score, base, last)."""
    return f"{PREFIX}:reports:{bid}:{oid}:{part}"


def report_queue(bid: str) -> str:
    """Sorted set: opening id -> unix ms of its latest report, the hosts' review queue."""
    return f"{PREFIX}:reports:{bid}:queue"


def employers(org: str) -> str:
    """Hash: employer id -> its record (JSON) of an organization (openings/employers.py)."""
    return f"{PREFIX}:org:{org}:employers"


def employer_names(org: str) -> str:
    """Hash: an employer's name as matched (openings/employers.py `name_key`) -> its id."""
    return f"{PREFIX}:org:{org}:employer-names"
