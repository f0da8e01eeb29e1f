//! The settings of one raft peer.

use crate::errors::{Error, Result};
use crate::read_only::ReadOnlyOption;
use crate::util::NO_LIMIT;

/// How a raft peer behaves. All durations are in ticks of the host's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// This peer's id; never 0.
    pub id: u64,
    /// Ticks without hearing from a leader before a follower campaigns. The
    /// actual timeout is drawn at random from `[election_ticks, 2 * election_ticks)`.
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats. Must be below `election_ticks`.
    pub heartbeat_ticks: usize,
    /// The index the host has already applied; committed entries up to it are
    /// not handed out again after a restart.
    pub applied: u64,
    /// Cap on the entry bytes of one append message (at least one entry is
    /// always sent). `NO_LIMIT` for none.
    pub msg_bytes_max: u64,
    /// Cap on the committed entry bytes handed out in one `Ready`.
    pub committed_bytes_per_ready_max: u64,
    /// Cap on the payload bytes a leader holds uncommitted; proposals beyond
    /// it are dropped. `NO_LIMIT` for none.
    pub uncommitted_bytes_max: u64,
    /// Cap on append messages in flight to one follower in replicate state.
    pub inflight_msgs_max: usize,
    /// Cap on entry bytes in flight to one follower. `NO_LIMIT` for none.
    pub inflight_bytes_max: u64,
    /// A leader steps down when it has not heard from a quorum within an
    /// election timeout; followers that heard from a leader within the
    /// timeout refuse votes (leader lease).
    pub check_quorum: bool,
    /// Run a pre-election before incrementing the term, so a partitioned
    /// peer cannot disrupt the group when it returns.
    pub pre_vote: bool,
    /// How read-index requests are served.
    pub read_only_option: ReadOnlyOption,
    /// Followers drop proposals instead of forwarding them to the leader.
    pub disable_proposal_forwarding: bool,
    /// When an acknowledgement moves the commit index, send every follower
    /// an append at once, an empty one if it has no new entries, so it
    /// learns the commit within one message. When false, only followers
    /// with entries to receive get an append (it carries the commit); the
    /// others learn the commit from their next append or heartbeat, at
    /// most `heartbeat_ticks` later. That saves two messages (the empty
    /// append and its acknowledgement) per follower per commit; the
    /// leader's own apply, and so the client's answer, does not wait for
    /// it either way.
    pub broadcast_commit: bool,
    /// Seed for the randomized election timeout; mixed with `id`.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: 0,
            election_ticks: 10,
            heartbeat_ticks: 1,
            applied: 0,
            msg_bytes_max: 1 << 20,
            committed_bytes_per_ready_max: 16 << 20,
            uncommitted_bytes_max: NO_LIMIT,
            inflight_msgs_max: 256,
            inflight_bytes_max: NO_LIMIT,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            disable_proposal_forwarding: false,
            broadcast_commit: true,
            seed: 0,
        }
    }
}

impl Config {
    /// A default configuration for peer `id`.
    pub fn new(id: u64) -> Self {
        Config {
            id,
            ..Default::default()
        }
    }

    /// Checks the settings; every constraint violated is a clear error.
    pub fn validate(&self) -> Result<()> {
        let fail = |why: &str| Err(Error::ConfigInvalid(why.to_string()));
        if self.id == 0 {
            return fail("id must not be 0");
        }
        if self.heartbeat_ticks == 0 {
            return fail("heartbeat_ticks must be greater than 0");
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return fail("election_ticks must be greater than heartbeat_ticks");
        }
        if self.inflight_msgs_max == 0 {
            return fail("inflight_msgs_max must be greater than 0");
        }
        if self.inflight_bytes_max < self.msg_bytes_max {
            return fail("inflight_bytes_max must be at least msg_bytes_max");
        }
        if self.committed_bytes_per_ready_max == 0 {
            return fail("committed_bytes_per_ready_max must be greater than 0");
        }
        if self.read_only_option == ReadOnlyOption::LeaseBased && !self.check_quorum {
            return fail("lease-based reads need check_quorum");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_with_an_id_is_valid() {
        assert_eq!(Config::new(1).validate(), Ok(()));
    }

    #[test]
    fn invalid_settings_are_rejected_with_a_reason() {
        let cases: Vec<(Config, &str)> = vec![
            (Config::default(), "id must not be 0"),
            (
                Config {
                    heartbeat_ticks: 0,
                    ..Config::new(1)
                },
                "heartbeat_ticks",
            ),
            (
                Config {
                    election_ticks: 1,
                    ..Config::new(1)
                },
                "election_ticks",
            ),
            (
                Config {
                    inflight_msgs_max: 0,
                    ..Config::new(1)
                },
                "inflight_msgs_max",
            ),
            (
                Config {
                    inflight_bytes_max: 10,
                    ..Config::new(1)
                },
                "inflight_bytes_max",
            ),
            (
                Config {
                    read_only_option: ReadOnlyOption::LeaseBased,
                    check_quorum: false,
                    ..Config::new(1)
                },
                "check_quorum",
            ),
        ];
        for (cfg, want) in cases {
            match cfg.validate() {
                Err(Error::ConfigInvalid(why)) => assert!(why.contains(want), "{why} vs {want}"),
                other => panic!("{cfg:?}: expected an error about {want}, got {other:?}"),
            }
        }
    }
}
