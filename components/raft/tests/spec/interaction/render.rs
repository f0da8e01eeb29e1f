//! Compact, deterministic renderings of raft's wire types for golden output.
//!
//! - entry: `term/index Type payload`, e.g. `2/11 EntryNormal "put"` or
//!   `2/12 EntryConfChangeV2 v4 l5 (explicit)`;
//! - message: `from->to Type Term:T` plus what matters for the type, e.g.
//!   `1->2 MsgAppend Term:2 Log:1/10 Commit:10 Entries:[2/11 EntryNormal ""]`
//!   (`Log:` is the term/index of the entry preceding the appended ones, or
//!   of the candidate's last entry); a rejected append response shows
//!   `Reject:I Hint:T/J` (the rejected index, then the follower's hint as
//!   term/index).

use bytes::Bytes;
use flotilla_raft::raftpb::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry,
    EntryType, HardState, Message, MessageType, Snapshot,
};
use flotilla_raft::{CAMPAIGN_TRANSFER, ReadState, decode_conf_change, decode_conf_change_v2};

/// Payloads longer than this are shown by size only.
const MAX_SHOWN: usize = 24;

/// `"data"`, or `<N bytes>` for long payloads.
pub fn data(d: &Bytes) -> String {
    if d.len() > MAX_SHOWN {
        return format!("<{} bytes>", d.len());
    }
    format!("{:?}", String::from_utf8_lossy(d))
}

/// `v2`, `l3` or `r1`.
pub fn change(c: &ConfChangeSingle) -> String {
    let kind = match c.change_type() {
        ConfChangeType::AddNode => "v",
        ConfChangeType::AddLearnerNode => "l",
        ConfChangeType::RemoveNode => "r",
    };
    format!("{kind}{}", c.node_id)
}

/// `v2 l3 (explicit)`, or `leave-joint` for the empty change.
pub fn conf_change_v2(cc: &ConfChangeV2) -> String {
    if cc.changes.is_empty() {
        return "leave-joint".to_string();
    }
    let mut s = cc.changes.iter().map(change).collect::<Vec<_>>().join(" ");
    match ConfChangeTransition::try_from(cc.transition) {
        Ok(ConfChangeTransition::JointImplicit) => s.push_str(" (implicit)"),
        Ok(ConfChangeTransition::JointExplicit) => s.push_str(" (explicit)"),
        _ => {}
    }
    s
}

/// `term/index Type payload`.
pub fn entry(e: &Entry) -> String {
    let payload = match e.entry_type() {
        EntryType::EntryNormal => data(&e.data),
        EntryType::EntryConfChange => match decode_conf_change(e) {
            Ok(cc) => conf_change_v2(&cc.into_v2()),
            Err(_) => "<undecodable>".to_string(),
        },
        EntryType::EntryConfChangeV2 => match decode_conf_change_v2(e) {
            Ok(cc) => conf_change_v2(&cc),
            Err(_) => "<undecodable>".to_string(),
        },
    };
    format!("{}/{} {:?} {payload}", e.term, e.index, e.entry_type())
}

fn ids(v: &[u64]) -> String {
    let parts: Vec<String> = v.iter().map(u64::to_string).collect();
    format!("({})", parts.join(" "))
}

/// `voters=(1 2 3)&&(1 2) learners=(4) learners_next=(5) autoleave`.
pub fn conf_state(cs: &ConfState) -> String {
    let mut s = format!("voters={}", ids(&cs.voters));
    if !cs.voters_outgoing.is_empty() {
        s.push_str(&format!("&&{}", ids(&cs.voters_outgoing)));
    }
    if !cs.learners.is_empty() {
        s.push_str(&format!(" learners={}", ids(&cs.learners)));
    }
    if !cs.learners_next.is_empty() {
        s.push_str(&format!(" learners_next={}", ids(&cs.learners_next)));
    }
    if cs.auto_leave {
        s.push_str(" autoleave");
    }
    s
}

/// `index=10 term=2 voters=(1 2 3)`.
pub fn snapshot(s: &Snapshot) -> String {
    let cs = s
        .metadata
        .as_ref()
        .and_then(|m| m.conf_state.clone())
        .unwrap_or_default();
    format!("index={} term={} {}", s.index(), s.term(), conf_state(&cs))
}

/// `term=1 vote=2 commit=10`.
pub fn hard_state(hs: &HardState) -> String {
    format!("term={} vote={} commit={}", hs.term, hs.vote, hs.commit)
}

/// `index=10 ctx="r1"`.
pub fn read_state(rs: &ReadState) -> String {
    format!("index={} ctx={}", rs.index, data(&rs.request_ctx))
}

fn entries(es: &[Entry]) -> String {
    let parts: Vec<String> = es.iter().map(entry).collect();
    format!("[{}]", parts.join(", "))
}

/// One line per message; see the module docs.
pub fn message(m: &Message) -> String {
    let t = m.msg_type();
    let mut s = format!("{}->{} {t:?} Term:{}", m.from, m.to, m.term);
    match t {
        MessageType::MsgAppend => {
            s += &format!(" Log:{}/{} Commit:{}", m.log_term, m.index, m.commit);
        }
        MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => {
            s += &format!(" Log:{}/{}", m.log_term, m.index);
            if m.context.as_ref() == CAMPAIGN_TRANSFER {
                s += " Transfer";
            }
        }
        MessageType::MsgAppendResponse if m.reject => {
            s += &format!(" Reject:{} Hint:{}/{}", m.index, m.log_term, m.reject_hint);
        }
        MessageType::MsgAppendResponse | MessageType::MsgReadIndexResponse => {
            s += &format!(" Index:{}", m.index);
        }
        MessageType::MsgHeartbeat => s += &format!(" Commit:{}", m.commit),
        _ => {}
    }
    if m.reject && t != MessageType::MsgAppendResponse {
        s += " Rejected";
    }
    if !m.context.is_empty() && m.context.as_ref() != CAMPAIGN_TRANSFER {
        s += &format!(" Ctx:{}", data(&m.context));
    }
    let is_read = matches!(
        t,
        MessageType::MsgReadIndex | MessageType::MsgReadIndexResponse
    );
    match m.entries.first() {
        // A read carries its context as the data of a single entry.
        Some(e) if is_read => s += &format!(" Ctx:{}", data(&e.data)),
        Some(_) => s += &format!(" Entries:{}", entries(&m.entries)),
        None => {}
    }
    if let Some(snap) = &m.snapshot {
        s += &format!(" Snapshot:[{}]", snapshot(snap));
    }
    s
}
