//! One handler per script command: parse the arguments, check none is left
//! over, act, and print through [`emit`].

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use datadriven::TestCase;
use flotilla_raft::raftpb::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2,
};
use flotilla_raft::{Config, NO_LIMIT, ReadOnlyOption, SnapshotStatus};
use tracing::Level;

use super::capture::{self, emit};
use super::env::{InteractionEnv, NodeOpts};
use super::render;

/// The positional arguments (words without `=`): node ids in ascending
/// order (the script's order is not kept), and the other words.
fn positionals(tc: &mut TestCase) -> (Vec<u64>, Vec<String>) {
    let keys: Vec<String> = tc
        .args
        .iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(k, _)| k.clone())
        .collect();
    let (mut ids, mut words) = (Vec::new(), Vec::new());
    for k in keys {
        tc.args.remove(&k);
        match k.parse::<u64>() {
            Ok(id) => ids.push(id),
            Err(_) => words.push(k),
        }
    }
    ids.sort_unstable();
    words.sort();
    (ids, words)
}

/// Exactly one positional node id, and nothing else positional.
fn one_id(tc: &mut TestCase) -> anyhow::Result<u64> {
    let (ids, words) = positionals(tc);
    ensure!(words.is_empty(), "unexpected arguments {words:?}");
    match ids[..] {
        [id] => Ok(id),
        _ => bail!("expected exactly one node id, got {ids:?}"),
    }
}

/// One positional node id and one payload word (or `KEY=payload`).
fn id_and_word(tc: &mut TestCase, key: &str) -> anyhow::Result<(u64, Bytes)> {
    let named: Option<String> = tc.try_take_arg(key)?;
    let size: Option<usize> = tc.try_take_arg("size")?;
    let (ids, mut words) = positionals(tc);
    let word = match (named, size) {
        (Some(w), None) => w,
        (None, Some(n)) => "x".repeat(n),
        (None, None) if words.len() == 1 => words.remove(0),
        _ => bail!("give the {key} as one word, as {key}=WORD or as size=N"),
    };
    match ids[..] {
        [id] => Ok((id, Bytes::from(word))),
        _ => bail!("expected exactly one node id, got {ids:?}"),
    }
}

/// The positional node ids, or every node when none is given.
fn ids_or_all(env: &InteractionEnv, tc: &mut TestCase) -> anyhow::Result<Vec<u64>> {
    let (ids, words) = positionals(tc);
    ensure!(words.is_empty(), "unexpected arguments {words:?}");
    if ids.is_empty() {
        return Ok(env.nodes.keys().copied().collect());
    }
    Ok(ids)
}

fn done(tc: &TestCase) -> anyhow::Result<()> {
    tc.expect_empty()?;
    Ok(())
}

fn config(tc: &mut TestCase) -> anyhow::Result<Config> {
    let d = Config::default();
    let inflight_bytes = tc.try_take_arg("max-inflight-bytes")?.unwrap_or(NO_LIMIT);
    let read_only = match tc.try_take_arg::<String>("read-only")?.as_deref() {
        None | Some("safe") => ReadOnlyOption::Safe,
        Some("lease") => ReadOnlyOption::LeaseBased,
        Some(o) => bail!("read-only must be safe or lease, not {o}"),
    };
    Ok(Config {
        election_ticks: tc.try_take_arg("election")?.unwrap_or(10),
        heartbeat_ticks: tc.try_take_arg("heartbeat")?.unwrap_or(1),
        check_quorum: tc.try_take_arg("checkquorum")?.unwrap_or(false),
        pre_vote: tc.try_take_arg("prevote")?.unwrap_or(false),
        read_only_option: read_only,
        inflight_msgs_max: tc.try_take_arg("max-inflight")?.unwrap_or(256),
        inflight_bytes_max: inflight_bytes,
        msg_bytes_max: tc
            .try_take_arg("max-msg-bytes")?
            .unwrap_or(d.msg_bytes_max.min(inflight_bytes)),
        uncommitted_bytes_max: tc.try_take_arg("max-uncommitted")?.unwrap_or(NO_LIMIT),
        disable_proposal_forwarding: tc.try_take_arg("no-forwarding")?.unwrap_or(false),
        ..d
    })
}

pub fn add_nodes(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let n = one_id(tc)?;
    let opts = NodeOpts {
        cfg: config(tc)?,
        voters: tc.try_take_args("voters")?.unwrap_or_default(),
        learners: tc.try_take_args("learners")?.unwrap_or_default(),
        index: tc.try_take_arg("index")?,
        async_writes: tc.try_take_arg("async-storage-writes")?.unwrap_or(false),
    };
    done(tc)?;
    env.add_nodes(n, &opts)
}

pub fn campaign(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let id = one_id(tc)?;
    done(tc)?;
    if let Err(e) = env.node(id)?.raw.campaign() {
        emit(format!("ERROR {e}"));
    }
    Ok(())
}

pub fn propose(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let (id, data) = id_and_word(tc, "data")?;
    done(tc)?;
    if let Err(e) = env.node(id)?.raw.propose(Bytes::new(), data) {
        emit(format!("ERROR {e}"));
    }
    Ok(())
}

/// Parses `v2 l3 r1` (add voter 2, add learner 3, remove 1).
fn parse_changes(input: &str) -> anyhow::Result<Vec<ConfChangeSingle>> {
    let parse = |tok: &str| -> anyhow::Result<ConfChangeSingle> {
        let (kind, id) = tok.split_at(1);
        let change_type = match kind {
            "v" => ConfChangeType::AddNode,
            "l" => ConfChangeType::AddLearnerNode,
            "r" => ConfChangeType::RemoveNode,
            _ => bail!("unknown change {tok:?}: use v<id>, l<id> or r<id>"),
        };
        let node_id = id
            .parse()
            .with_context(|| format!("bad node id in {tok:?}"))?;
        Ok(ConfChangeSingle {
            change_type: change_type as i32,
            node_id,
        })
    };
    input.split_whitespace().map(parse).collect()
}

pub fn propose_conf_change(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let id = one_id(tc)?;
    let v1 = tc.try_take_arg("v1")?.unwrap_or(false);
    let transition = match tc.try_take_arg::<String>("transition")?.as_deref() {
        None | Some("auto") => ConfChangeTransition::Auto,
        Some("implicit") => ConfChangeTransition::JointImplicit,
        Some("explicit") => ConfChangeTransition::JointExplicit,
        Some(t) => bail!("transition must be auto, implicit or explicit, not {t}"),
    };
    done(tc)?;
    let changes = parse_changes(&tc.input)?;
    let raw = &mut env.node(id)?.raw;
    let res = if v1 {
        let [c] = &changes[..] else {
            bail!("a v1 conf change holds exactly one change");
        };
        let cc = ConfChange {
            change_type: c.change_type,
            node_id: c.node_id,
            ..Default::default()
        };
        raw.propose_conf_change(Bytes::new(), cc)
    } else {
        let cc = ConfChangeV2 {
            transition: transition as i32,
            changes,
            context: Bytes::new(),
        };
        raw.propose_conf_change_v2(Bytes::new(), cc)
    };
    if let Err(e) = res {
        emit(format!("ERROR {e}"));
    }
    Ok(())
}

/// `tick-election`, `tick-heartbeat` and `tick ID n=N`.
pub fn tick(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let id = one_id(tc)?;
    let n: Option<usize> = tc.try_take_arg("n")?;
    done(tc)?;
    let raft = &env.node(id)?.raw.raft;
    let leader = raft.state == flotilla_raft::StateRole::Leader;
    let ticks = match (tc.directive.as_str(), n) {
        ("tick", Some(n)) => n,
        ("tick", None) => bail!("tick needs n=N"),
        ("tick-election", None) if leader => {
            raft.election_ticks().saturating_sub(raft.election_elapsed)
        }
        ("tick-election", None) => raft
            .randomized_election_ticks()
            .saturating_sub(raft.election_elapsed),
        ("tick-heartbeat", None) if leader => raft
            .heartbeat_ticks()
            .saturating_sub(raft.heartbeat_elapsed),
        ("tick-heartbeat", None) => raft.heartbeat_ticks(),
        (d, _) => bail!("{d} takes no n="),
    };
    let raw = &mut env.node(id)?.raw;
    for _ in 0..ticks.max(1) {
        raw.tick();
    }
    Ok(())
}

pub fn transfer_leader(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let from: u64 = tc.take_arg("from")?;
    let to: u64 = tc.take_arg("to")?;
    done(tc)?;
    env.node(from)?.raw.transfer_leader(to);
    Ok(())
}

pub fn read_index(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let (id, ctx) = id_and_word(tc, "ctx")?;
    done(tc)?;
    if let Err(e) = env.node(id)?.raw.read_index(ctx) {
        emit(format!("ERROR {e}"));
    }
    Ok(())
}

pub fn report_unreachable(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let id = one_id(tc)?;
    let peer: u64 = tc.take_arg("peer")?;
    done(tc)?;
    env.node(id)?.raw.report_unreachable(peer);
    Ok(())
}

pub fn report_snapshot(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let id = one_id(tc)?;
    let peer: u64 = tc.take_arg("peer")?;
    let status = match tc.try_take_arg::<String>("status")?.as_deref() {
        None | Some("finish") => SnapshotStatus::Finish,
        Some("failure") => SnapshotStatus::Failure,
        Some(s) => bail!("status must be finish or failure, not {s}"),
    };
    done(tc)?;
    env.node(id)?.raw.report_snapshot(peer, status);
    Ok(())
}

pub fn compact(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let id = one_id(tc)?;
    let index: u64 = tc.take_arg("index")?;
    done(tc)?;
    env.compact(id, index)
}

/// `process-ready`, `process-append-thread` and `process-apply-thread`.
pub fn process(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let ids = ids_or_all(env, tc)?;
    done(tc)?;
    for id in ids {
        match tc.directive.as_str() {
            "process-ready" => env.process_ready(id)?,
            "process-append-thread" => env.append_thread(id)?,
            _ => env.apply_thread(id)?,
        }
    }
    Ok(())
}

pub fn deliver_msgs(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let drop: Vec<u64> = tc.try_take_args("drop")?.unwrap_or_default();
    let (ids, words) = positionals(tc);
    ensure!(words.is_empty(), "unexpected arguments {words:?}");
    done(tc)?;
    for &id in &drop {
        env.drop_msgs(id);
    }
    let ids = if ids.is_empty() && drop.is_empty() {
        env.inbox.keys().copied().collect()
    } else {
        ids
    };
    for id in ids {
        env.deliver(id);
    }
    Ok(())
}

pub fn stabilize(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let ids = ids_or_all(env, tc)?;
    done(tc)?;
    env.stabilize(&ids)
}

pub fn isolate(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let id = one_id(tc)?;
    done(tc)?;
    env.isolated.insert(id);
    Ok(())
}

pub fn recover(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let (ids, _) = positionals(tc);
    done(tc)?;
    if ids.is_empty() {
        env.isolated.clear();
    }
    for id in ids {
        env.isolated.remove(&id);
    }
    Ok(())
}

pub fn raft_log(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let id = one_id(tc)?;
    done(tc)?;
    let log = &env.node(id)?.raw.raft.raft_log;
    emit(format!(
        "first={} last={} committed={} applied={} persisted={}",
        log.first_index(),
        log.last_index(),
        log.committed,
        log.applied,
        log.persisted_index()
    ));
    if let Some(snap) = &log.unstable.snapshot {
        emit(format!("unstable snapshot {}", render::snapshot(snap)));
    }
    for e in log.all_entries() {
        let unstable = if e.index > log.persisted_index() {
            " (unstable)"
        } else {
            ""
        };
        emit(format!("{}{unstable}", render::entry(&e)));
    }
    Ok(())
}

pub fn raft_state(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    done(tc)?;
    for (id, node) in &env.nodes {
        let r = &node.raw.raft;
        let cut = if env.isolated.contains(id) {
            " (isolated)"
        } else {
            ""
        };
        emit(format!(
            "{id}: {} term={} vote={} lead={} commit={} applied={}{cut}",
            r.state, r.term, r.vote, r.lead, r.raft_log.committed, r.raft_log.applied
        ));
    }
    Ok(())
}

pub fn status(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let id = one_id(tc)?;
    done(tc)?;
    for line in env.node(id)?.raw.status().to_string().lines() {
        emit(line);
    }
    Ok(())
}

pub fn log_level(tc: &mut TestCase) -> anyhow::Result<()> {
    let (_, words) = positionals(tc);
    done(tc)?;
    let level = match words.as_slice() {
        [w] if w == "none" => None,
        [w] if w == "debug" => Some(Level::DEBUG),
        [w] if w == "info" => Some(Level::INFO),
        [w] if w == "warn" => Some(Level::WARN),
        _ => bail!("log-level takes one of none, debug, info, warn"),
    };
    capture::set_level(level);
    Ok(())
}

pub fn restart(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<()> {
    let id = one_id(tc)?;
    done(tc)?;
    env.restart(id)
}
