//! Daily quota rules (sans-IO): what a reservation may be granted, given what is already used
//! and reserved today. Time is passed in as unix seconds; days are UTC.

use serde::{Deserialize, Serialize};

use crate::tier::Tier;

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKind {
    /// Chat messages sent by the user.
    Messages,
    /// Seconds of voice calls.
    VoiceSeconds,
    /// Seconds of game sessions.
    GameSeconds,
}

impl QuotaKind {
    /// The name stored in `usage_records.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::VoiceSeconds => "voice_seconds",
            Self::GameSeconds => "game_seconds",
        }
    }

    /// This kind's daily allowance on `tier`, in its unit; `None` is unlimited.
    pub fn daily_limit(self, tier: Tier) -> Option<u64> {
        let limits = tier.limits();
        match self {
            Self::Messages => limits.messages_per_day,
            Self::VoiceSeconds => limits.voice_minutes_per_day.map(|m| m * 60),
            Self::GameSeconds => limits.gaming_hours_per_day.map(|h| h * 3600),
        }
    }
}

/// The UTC day number of a unix time.
pub fn day_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(86_400)
}

/// Seconds until the next UTC midnight, when daily quotas reset.
pub fn secs_until_reset(unix_secs: i64) -> u64 {
    (86_400 - unix_secs.rem_euclid(86_400)) as u64
}

/// Today's state of one quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Settled consumption.
    pub used: u64,
    /// Granted to reservations not yet settled.
    pub reserved: u64,
}

impl Usage {
    /// What is left under `limit` (`None` = unlimited).
    pub fn remaining(self, limit: Option<u64>) -> Option<u64> {
        limit.map(|l| l.saturating_sub(self.used + self.reserved))
    }

    /// How much of `requested` may be granted now: all of it, or what is left (possibly 0).
    /// A partial grant is how a voice call learns exactly how long it may continue.
    pub fn grant(self, limit: Option<u64>, requested: u64) -> u64 {
        match self.remaining(limit) {
            None => requested,
            Some(left) => requested.min(left),
        }
    }
}

/// What settling a reservation does: `used` is clamped to what was granted (a caller cannot
/// consume more than it reserved); the rest of the grant is released.
pub fn settle(granted: u64, reported_used: u64) -> u64 {
    reported_used.min(granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_user_gets_the_last_minutes_of_voice_and_then_nothing() {
        let limit = QuotaKind::VoiceSeconds.daily_limit(Tier::Free);
        assert_eq!(limit, Some(300));
        let today = Usage {
            used: 240,
            reserved: 30,
        };
        assert_eq!(today.grant(limit, 60), 30);
        let exhausted = Usage {
            used: 270,
            reserved: 30,
        };
        assert_eq!(exhausted.grant(limit, 60), 0);
    }

    #[test]
    fn pro_is_unlimited_and_free_has_no_gaming() {
        let busy = Usage {
            used: 1_000_000,
            reserved: 0,
        };
        assert_eq!(
            busy.grant(QuotaKind::Messages.daily_limit(Tier::Pro), 10),
            10
        );
        let fresh = Usage {
            used: 0,
            reserved: 0,
        };
        assert_eq!(
            fresh.grant(QuotaKind::GameSeconds.daily_limit(Tier::Free), 60),
            0
        );
        assert_eq!(QuotaKind::GameSeconds.daily_limit(Tier::Plus), Some(7_200));
    }

    #[test]
    fn days_are_utc_and_reset_at_midnight() {
        assert_eq!(day_of(86_399), 0);
        assert_eq!(day_of(86_400), 1);
        assert_eq!(secs_until_reset(86_400 - 10), 10);
        assert_eq!(settle(60, 75), 60);
        assert_eq!(settle(60, 12), 12);
    }
}
