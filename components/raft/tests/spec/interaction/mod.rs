//! Golden-file interaction tests of the raft core.
//!
//! Every file in `testdata/` is a script: commands, each followed by `----`
//! and the output it must produce. `REWRITE=1 cargo test -p flotilla-raft
//! --test spec interaction` regenerates the outputs (read the diff!);
//! `RUN=name.txt` limits a run to one script. A
//! script drives a simulated cluster ([`env::InteractionEnv`]): nodes made
//! of a `RawNode<MemStorage>`, a message queue per recipient, and a set of
//! isolated nodes. Nothing happens on its own: messages sit in the queues
//! until delivered and time moves only when ticked.
//!
//! Under each command appear the raft core's own log events (`INFO 2
//! became follower term=3 leader=0`: level, peer, message, fields), in the
//! order they happened. Messages are rendered by [`render::message`]. A
//! handled ready is printed as `> 1 handling ready #N (must sync)` followed
//! by what it holds: `state` (soft state), `hard state`, `snapshot`,
//! `entries` (to persist), `committed` (to apply), `read states`,
//! `messages` (sent at once) and `after persist` (sent once the ready's
//! writes are durable).
//!
//! Arguments are `key=value`, `key=(a,b,c)` for lists, or positional words
//! (whose order is lost: several positional ids are taken in ascending
//! order). Commands:
//!
//! - `add-nodes N [voters=(1,2,3)] [learners=(4)] [index=I] [prevote=true]
//!   [checkquorum=true] [read-only=safe|lease] [max-inflight=N]
//!   [max-inflight-bytes=N] [max-msg-bytes=N] [max-uncommitted=N]
//!   [no-forwarding=true] [async-storage-writes=true] [election=10]
//!   [heartbeat=1]`: adds N nodes with the next ids. Their storage holds
//!   the given membership; with `index`, also a snapshot at that index
//!   (term 1), so they start with a shared, committed log. Defaults:
//!   pre-vote and check-quorum off, election 10 and heartbeat 1 ticks; the
//!   election-timeout seed is fixed per node id.
//! - `campaign ID`: the node starts an election (a pre-election with pre-vote).
//! - `propose ID DATA` (or `data=DATA`, or `size=N` for N bytes of `x`).
//! - `propose-conf-change ID [v1=true] [transition=auto|implicit|explicit]`,
//!   followed by a line of changes such as `v2 l3 r1` (add voter 2, add
//!   learner 3, remove 1); an empty line proposes leaving a joint config.
//! - `tick-election ID`: ticks the node until its election timeout fires
//!   once (its randomized timeout; a leader's check-quorum interval).
//!   `tick-heartbeat ID`: ticks one heartbeat interval. `tick ID n=N`.
//! - `transfer-leader from=ID to=ID`, `read-index ID CTX` (or `ctx=CTX`),
//!   `report-unreachable ID peer=ID`, `report-snapshot ID peer=ID
//!   [status=finish|failure]` (how sending a snapshot to the peer ended).
//! - `compact ID index=I`: snapshots node ID's storage at applied index I
//!   (with the membership in force there) and discards the log up to I.
//! - `process-ready [ID...]`: takes one `Ready` per node, prints it and
//!   handles it: persists it, sends its messages, applies committed entries
//!   (membership changes included) and calls `advance`. A node with
//!   `async-storage-writes=true` instead sends `messages` at once and hands
//!   the writes to `process-append-thread [ID...]` (persist, then
//!   `on_persist_ready`, then send the messages that waited for it) and
//!   the committed entries to `process-apply-thread [ID...]` (apply, then
//!   `advance_apply_to`).
//! - `deliver-msgs [drop=(ID,...)] [ID...]`: discards the queued messages
//!   of the `drop` nodes, and delivers (steps) those of the others; with no
//!   argument, delivers everything queued.
//! - `stabilize [ID...]`: repeats handling readies (and the async threads)
//!   and delivering messages among the nodes until nothing moves.
//! - `isolate ID`, `recover [ID...]`: messages from or to an isolated node
//!   are dropped when delivered.
//! - `restart ID`: rebuilds the node from its storage; unpersisted state
//!   (unstable entries, pending async writes) is lost, and the state
//!   machine restarts from the stored snapshot (later committed entries,
//!   membership changes included, are applied again).
//! - `raft-log ID`, `raft-state`, `status ID`: inspection.
//! - `log-level none|warn|info|debug`: which log events are shown (info
//!   at the start of each script).
//!
//! Any command takes `quiet=true` to hide its output (for set-up steps).

mod capture;
mod cmds;
mod env;
mod ready;
mod render;

use datadriven::TestCase;

use env::InteractionEnv;

fn handle(env: &mut InteractionEnv, tc: &mut TestCase) -> anyhow::Result<String> {
    capture::take();
    let quiet: bool = tc.try_take_arg("quiet")?.unwrap_or(false);
    let res = match tc.directive.as_str() {
        "add-nodes" => cmds::add_nodes(env, tc),
        "campaign" => cmds::campaign(env, tc),
        "propose" => cmds::propose(env, tc),
        "propose-conf-change" => cmds::propose_conf_change(env, tc),
        "tick" | "tick-election" | "tick-heartbeat" => cmds::tick(env, tc),
        "transfer-leader" => cmds::transfer_leader(env, tc),
        "read-index" => cmds::read_index(env, tc),
        "report-unreachable" => cmds::report_unreachable(env, tc),
        "report-snapshot" => cmds::report_snapshot(env, tc),
        "compact" => cmds::compact(env, tc),
        "process-ready" | "process-append-thread" | "process-apply-thread" => {
            cmds::process(env, tc)
        }
        "deliver-msgs" => cmds::deliver_msgs(env, tc),
        "stabilize" => cmds::stabilize(env, tc),
        "isolate" => cmds::isolate(env, tc),
        "recover" => cmds::recover(env, tc),
        "restart" => cmds::restart(env, tc),
        "raft-log" => cmds::raft_log(env, tc),
        "raft-state" => cmds::raft_state(env, tc),
        "status" => cmds::status(env, tc),
        "log-level" => cmds::log_level(tc),
        d => Err(anyhow::anyhow!("unknown command {d:?}")),
    };
    let out = capture::take();
    res.map_err(|e| anyhow::anyhow!("{}: {e:#}\noutput so far:\n{out}", tc.directive))?;
    if out.is_empty() || quiet {
        return Ok("ok\n".to_string());
    }
    Ok(out)
}

#[test]
fn interaction_scripts() {
    capture::install();
    datadriven::walk("testdata", |f| {
        capture::reset();
        let mut env = InteractionEnv::default();
        f.run(|tc| handle(&mut env, tc));
    });
}
