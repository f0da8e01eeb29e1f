//! The batch system's knobs: a plain struct, a `Default`, and `validate`.

use std::time::Duration;

/// Sizes and budgets of a batch system. Every queue and batch it keeps has
/// its bound here, except the ready queue, which holds each registered FSM at
/// most once by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Poller threads.
    pub pool_size: usize,
    /// Most FSMs one poller takes into one round; the `end` hook sees at most
    /// this many.
    pub max_batch_size: usize,
    /// Most messages one FSM may take in one round. An FSM that uses it up
    /// with messages left goes to the back of the ready queue, so a busy FSM
    /// cannot starve the others.
    pub messages_per_tick: usize,
    /// Longest one FSM's turn may keep taking messages (checked between
    /// messages); past it the FSM is rescheduled like one out of budget.
    pub reschedule_duration: Duration,
    /// Messages a normal FSM's mailbox holds before `send` answers `Full`.
    pub mailbox_capacity: usize,
    /// Messages the control FSM's mailbox holds before `send_control`
    /// answers `Full`.
    pub control_mailbox_capacity: usize,
    /// Mailboxes each router clone caches to skip the shared map's lock.
    pub router_cache_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pool_size: 2,
            max_batch_size: 256,
            messages_per_tick: 1024,
            reschedule_duration: Duration::from_millis(5),
            mailbox_capacity: 4096,
            control_mailbox_capacity: 4096,
            router_cache_capacity: 1024,
        }
    }
}

/// A [`Config`] field out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A size, count or duration that must be positive is zero.
    #[error("batch-system config: {field} must be positive")]
    Zero {
        /// The field's name.
        field: &'static str,
    },
}

impl Config {
    /// Checks every field; the first one out of range is reported.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let sizes = [
            ("pool_size", self.pool_size),
            ("max_batch_size", self.max_batch_size),
            ("messages_per_tick", self.messages_per_tick),
            ("mailbox_capacity", self.mailbox_capacity),
            ("control_mailbox_capacity", self.control_mailbox_capacity),
            ("router_cache_capacity", self.router_cache_capacity),
        ];
        if let Some((field, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Zero { field });
        }
        if self.reschedule_duration.is_zero() {
            return Err(ConfigError::Zero {
                field: "reschedule_duration",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn zero_fields_are_named() {
        let cfg = Config {
            messages_per_tick: 0,
            ..Config::default()
        };
        assert_eq!(
            cfg.validate(),
            Err(ConfigError::Zero {
                field: "messages_per_tick"
            })
        );
        let cfg = Config {
            reschedule_duration: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(
            cfg.validate(),
            Err(ConfigError::Zero {
                field: "reschedule_duration"
            })
        );
    }
}
