//! The voice meter (sans-IO): how a voice session spends the caller's daily voice seconds.
//!
//! A session runs on blocks of seconds reserved from the control plane. The first block is
//! granted before the session starts; the meter says when to reserve the next one (a lead
//! time before the granted time runs out), when the session must end (the granted time is
//! spent and no more was granted), and what each block really used once it is over. It is fed
//! `now` and the control plane's answers; the async shell (`quota.rs`) only makes the calls.
//!
//! Rules:
//! - A grant smaller than asked means the day's quota is spent: no more renewals.
//! - An unreachable control plane is asked again every `retry` with the same block number
//!   (the shell's keys are idempotent), until the granted time runs out.
//! - A refusal (the caller's token is no longer accepted) stops renewals, until the client
//!   refreshes its token (`auth`): then the refused block is asked for again at once. A
//!   refusal of a request sent with the old token after a refresh is retried the same way.
//! - Used time is the session's wall-clock time rounded up to whole seconds, clamped to what
//!   was granted, and charged to the blocks in order. Every block asked for is settled, those
//!   whose answer never arrived with 0 (the control plane may have recorded them).

use std::time::{Duration, Instant};

/// The meter's settings (`voice.quota.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MeterConfig {
    /// Seconds asked for per block (at least 1).
    pub(crate) block_secs: u64,
    /// How long before the granted time runs out the next block is asked for.
    pub(crate) renew_lead: Duration,
    /// Wait between attempts while the control plane is unreachable.
    pub(crate) retry: Duration,
}

/// What the shell should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Reserve block `seq` of `amount` seconds, then report the answer.
    Reserve { seq: u32, amount: u64 },
    /// Nothing to do before this instant (then poll again).
    WaitUntil(Instant),
    /// The granted time is spent: the session must end now.
    End(Cutoff),
}

/// Why the granted time could not be extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cutoff {
    /// The control plane granted no more: the day's quota is spent.
    Exhausted,
    /// The control plane refused to reserve more (the caller's token has expired).
    Refused,
    /// The control plane could not be reached before the granted time ran out.
    Unconfirmed,
}

/// One voice session's meter.
#[derive(Debug)]
pub(crate) struct VoiceMeter {
    config: MeterConfig,
    started: Instant,
    /// Seconds granted per block, by block number (index 0 is the first block).
    granted: Vec<u64>,
    total: u64,
    /// Blocks asked for so far (granted ones plus one whose answer is pending or was lost).
    asked: u32,
    in_flight: bool,
    /// When to ask again after the control plane was unreachable.
    retry_at: Option<Instant>,
    /// No more renewals will be asked for.
    last: bool,
    /// The latest attempt did not reach the control plane.
    unreachable: bool,
    /// The control plane refused the latest attempt.
    refused: bool,
    /// The token was refreshed while a request made with the old one was in flight.
    stale_ask: bool,
}

impl VoiceMeter {
    /// A session starting at `started` on a first block of `granted` seconds (more than 0)
    /// out of the `config.block_secs` asked for.
    pub(crate) fn new(config: MeterConfig, started: Instant, granted: u64) -> Self {
        Self {
            config,
            started,
            granted: vec![granted],
            total: granted,
            asked: 1,
            in_flight: false,
            retry_at: None,
            last: granted < config.block_secs,
            unreachable: false,
            refused: false,
            stale_ask: false,
        }
    }

    /// When the granted time runs out.
    pub(crate) fn deadline(&self) -> Instant {
        self.started + Duration::from_secs(self.total)
    }

    /// Seconds granted so far.
    pub(crate) fn granted_secs(&self) -> u64 {
        self.total
    }

    /// What to do at `now`. A `Reserve` is returned once; the answer must be reported with
    /// [`on_grant`](Self::on_grant), [`on_unreachable`](Self::on_unreachable) or
    /// [`on_refused`](Self::on_refused) before another is asked for.
    pub(crate) fn poll(&mut self, now: Instant) -> Next {
        let deadline = self.deadline();
        if now >= deadline {
            return Next::End(if self.unreachable {
                Cutoff::Unconfirmed
            } else if self.refused {
                Cutoff::Refused
            } else {
                Cutoff::Exhausted
            });
        }
        if self.last || self.in_flight {
            return Next::WaitUntil(deadline);
        }
        let renew_at = self.retry_at.unwrap_or_else(|| {
            deadline
                .checked_sub(self.config.renew_lead)
                .unwrap_or(self.started)
        });
        if now >= renew_at {
            self.in_flight = true;
            if self.retry_at.take().is_none() {
                self.asked += 1;
            }
            return Next::Reserve {
                seq: self.asked - 1,
                amount: self.config.block_secs,
            };
        }
        Next::WaitUntil(renew_at.min(deadline))
    }

    /// The control plane granted `granted` seconds for the block asked for.
    pub(crate) fn on_grant(&mut self, granted: u64) {
        self.in_flight = false;
        self.stale_ask = false;
        self.unreachable = false;
        self.granted.push(granted);
        self.total += granted;
        if granted < self.config.block_secs {
            self.last = true;
        }
    }

    /// The control plane could not be reached: the same block is asked for again later.
    pub(crate) fn on_unreachable(&mut self, now: Instant) {
        self.in_flight = false;
        self.stale_ask = false;
        self.unreachable = true;
        self.retry_at = Some(now + self.config.retry);
    }

    /// The control plane refused to reserve (the caller's token is no longer accepted): the
    /// session ends when the granted time runs out, unless the request carried a token that
    /// has been refreshed since (then the block is asked for again at once).
    pub(crate) fn on_refused(&mut self, now: Instant) {
        self.in_flight = false;
        self.unreachable = false;
        if std::mem::take(&mut self.stale_ask) {
            self.retry_at = Some(now);
            return;
        }
        self.refused = true;
        self.last = true;
    }

    /// The client refreshed its token (the shell now asks with the new one). A refusal of
    /// the old token is lifted: the refused block is asked for again at once. A partial
    /// grant stays the last one (the day's quota is spent whatever the token).
    pub(crate) fn on_token_refreshed(&mut self, now: Instant) {
        if self.in_flight {
            self.stale_ask = true;
        }
        if std::mem::take(&mut self.refused) {
            self.last = false;
            self.retry_at = Some(now);
        }
    }

    /// Seconds used by a session ending at `now`: wall-clock time rounded up to whole
    /// seconds, never more than was granted.
    pub(crate) fn used_secs(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.started);
        let secs = elapsed.as_secs() + u64::from(elapsed.subsec_nanos() > 0);
        secs.min(self.total)
    }

    /// What to settle for a session ending at `now`: `(block number, seconds used)` for every
    /// block asked for, the used time charged to the blocks in order.
    pub(crate) fn settlements(&self, now: Instant) -> Vec<(u32, u64)> {
        let mut left = self.used_secs(now);
        (0..self.asked)
            .map(|seq| {
                let granted = self.granted.get(seq as usize).copied().unwrap_or(0);
                let used = left.min(granted);
                left -= used;
                (seq, used)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: MeterConfig = MeterConfig {
        block_secs: 60,
        renew_lead: Duration::from_secs(10),
        retry: Duration::from_secs(3),
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_next_block_is_reserved_a_lead_time_before_the_first_runs_out() {
        let t0 = Instant::now();
        let mut meter = VoiceMeter::new(CONFIG, t0, 60);
        assert_eq!(meter.poll(t0), Next::WaitUntil(t0 + secs(50)));
        assert_eq!(meter.poll(t0 + secs(49)), Next::WaitUntil(t0 + secs(50)));
        assert_eq!(
            meter.poll(t0 + secs(50)),
            Next::Reserve { seq: 1, amount: 60 }
        );
        // Asked once: while the answer is pending only the deadline matters.
        assert_eq!(meter.poll(t0 + secs(51)), Next::WaitUntil(t0 + secs(60)));
        meter.on_grant(60);
        assert_eq!(meter.deadline(), t0 + secs(120));
        assert_eq!(meter.poll(t0 + secs(60)), Next::WaitUntil(t0 + secs(110)));
        assert_eq!(
            meter.poll(t0 + secs(110)),
            Next::Reserve { seq: 2, amount: 60 }
        );
    }

    #[test]
    fn a_partial_grant_is_the_last_and_the_session_ends_when_it_is_spent() {
        let t0 = Instant::now();
        let mut meter = VoiceMeter::new(CONFIG, t0, 60);
        assert!(matches!(meter.poll(t0 + secs(50)), Next::Reserve { .. }));
        meter.on_grant(25);
        assert_eq!(meter.granted_secs(), 85);
        // No third block is asked for: the day's quota is spent.
        assert_eq!(meter.poll(t0 + secs(80)), Next::WaitUntil(t0 + secs(85)));
        assert_eq!(meter.poll(t0 + secs(85)), Next::End(Cutoff::Exhausted));
        assert_eq!(
            meter.settlements(t0 + secs(85) + Duration::from_millis(30)),
            vec![(0, 60), (1, 25)]
        );
    }

    #[test]
    fn a_partial_first_block_is_never_renewed() {
        let t0 = Instant::now();
        let mut meter = VoiceMeter::new(CONFIG, t0, 7);
        assert_eq!(meter.poll(t0), Next::WaitUntil(t0 + secs(7)));
        assert_eq!(meter.poll(t0 + secs(7)), Next::End(Cutoff::Exhausted));
        assert_eq!(meter.settlements(t0 + secs(9)), vec![(0, 7)]);
    }

    #[test]
    fn a_refused_renewal_ends_the_session_at_the_end_of_the_granted_time() {
        let t0 = Instant::now();
        let mut meter = VoiceMeter::new(CONFIG, t0, 60);
        assert!(matches!(meter.poll(t0 + secs(50)), Next::Reserve { .. }));
        meter.on_grant(0);
        assert_eq!(meter.poll(t0 + secs(55)), Next::WaitUntil(t0 + secs(60)));
        assert_eq!(meter.poll(t0 + secs(60)), Next::End(Cutoff::Exhausted));
        // The empty block is settled too (with 0): nothing stays reserved.
        assert_eq!(meter.settlements(t0 + secs(60)), vec![(0, 60), (1, 0)]);

        let mut meter = VoiceMeter::new(CONFIG, t0, 60);
        assert!(matches!(meter.poll(t0 + secs(50)), Next::Reserve { .. }));
        meter.on_refused(t0 + secs(50));
        assert_eq!(meter.poll(t0 + secs(51)), Next::WaitUntil(t0 + secs(60)));
        assert_eq!(meter.poll(t0 + secs(61)), Next::End(Cutoff::Refused));
    }

    #[test]
    fn a_refreshed_token_lifts_a_refusal_and_asks_for_the_same_block_again() {
        let t0 = Instant::now();
        let mut meter = VoiceMeter::new(CONFIG, t0, 60);
        assert_eq!(
            meter.poll(t0 + secs(50)),
            Next::Reserve { seq: 1, amount: 60 }
        );
        meter.on_refused(t0 + secs(50));
        assert_eq!(meter.poll(t0 + secs(52)), Next::WaitUntil(t0 + secs(60)));
        // The client's `auth` arrives before the granted time runs out.
        meter.on_token_refreshed(t0 + secs(53));
        assert_eq!(
            meter.poll(t0 + secs(53)),
            Next::Reserve { seq: 1, amount: 60 }
        );
        meter.on_grant(60);
        assert_eq!(meter.poll(t0 + secs(60)), Next::WaitUntil(t0 + secs(110)));
        assert_eq!(
            meter.settlements(t0 + secs(70)),
            vec![(0, 60), (1, 10)],
            "the block refused under the old token is charged once, as granted"
        );
    }

    #[test]
    fn a_refusal_of_a_request_made_with_the_old_token_is_retried_after_a_refresh() {
        let t0 = Instant::now();
        let mut meter = VoiceMeter::new(CONFIG, t0, 60);
        assert!(matches!(
            meter.poll(t0 + secs(50)),
            Next::Reserve { seq: 1, .. }
        ));
        // The refresh lands while the old token's request is in flight; its refusal is stale.
        meter.on_token_refreshed(t0 + secs(50));
        meter.on_refused(t0 + secs(51));
        assert_eq!(
            meter.poll(t0 + secs(51)),
            Next::Reserve { seq: 1, amount: 60 }
        );
        // A refusal of the new token ends renewals as before.
        meter.on_refused(t0 + secs(52));
        assert_eq!(meter.poll(t0 + secs(53)), Next::WaitUntil(t0 + secs(60)));
        assert_eq!(meter.poll(t0 + secs(60)), Next::End(Cutoff::Refused));
    }

    #[test]
    fn a_refresh_changes_nothing_on_a_healthy_or_spent_meter() {
        let t0 = Instant::now();
        let mut meter = VoiceMeter::new(CONFIG, t0, 60);
        meter.on_token_refreshed(t0 + secs(5));
        assert_eq!(meter.poll(t0 + secs(5)), Next::WaitUntil(t0 + secs(50)));
        assert!(matches!(meter.poll(t0 + secs(50)), Next::Reserve { .. }));
        meter.on_grant(25);
        meter.on_token_refreshed(t0 + secs(70));
        // The day's quota is spent: a new token asks for nothing more.
        assert_eq!(meter.poll(t0 + secs(70)), Next::WaitUntil(t0 + secs(85)));
    }

    #[test]
    fn an_unreachable_control_plane_is_retried_with_the_same_block_until_time_runs_out() {
        let t0 = Instant::now();
        let mut meter = VoiceMeter::new(CONFIG, t0, 60);
        assert_eq!(
            meter.poll(t0 + secs(50)),
            Next::Reserve { seq: 1, amount: 60 }
        );
        meter.on_unreachable(t0 + secs(51));
        assert_eq!(meter.poll(t0 + secs(52)), Next::WaitUntil(t0 + secs(54)));
        assert_eq!(
            meter.poll(t0 + secs(54)),
            Next::Reserve { seq: 1, amount: 60 }
        );
        meter.on_unreachable(t0 + secs(58));
        // The retry would come after the deadline: the deadline wins.
        assert_eq!(meter.poll(t0 + secs(59)), Next::WaitUntil(t0 + secs(60)));
        assert_eq!(meter.poll(t0 + secs(60)), Next::End(Cutoff::Unconfirmed));
        // Block 1 may have been recorded by a request whose answer was lost: settle it at 0.
        assert_eq!(meter.settlements(t0 + secs(60)), vec![(0, 60), (1, 0)]);
    }

    #[test]
    fn a_retry_that_gets_through_extends_the_session() {
        let t0 = Instant::now();
        let mut meter = VoiceMeter::new(CONFIG, t0, 60);
        assert!(matches!(meter.poll(t0 + secs(50)), Next::Reserve { .. }));
        meter.on_unreachable(t0 + secs(50));
        assert_eq!(
            meter.poll(t0 + secs(53)),
            Next::Reserve { seq: 1, amount: 60 }
        );
        meter.on_grant(60);
        assert_eq!(meter.poll(t0 + secs(60)), Next::WaitUntil(t0 + secs(110)));
        assert_eq!(
            meter.poll(t0 + secs(110)),
            Next::Reserve { seq: 2, amount: 60 }
        );
    }

    #[test]
    fn used_time_is_rounded_up_to_whole_seconds_and_clamped_to_the_grant() {
        let t0 = Instant::now();
        let mut meter = VoiceMeter::new(CONFIG, t0, 60);
        assert_eq!(meter.used_secs(t0), 0);
        assert_eq!(meter.used_secs(t0 + Duration::from_millis(1)), 1);
        assert_eq!(meter.used_secs(t0 + secs(12)), 12);
        assert_eq!(meter.used_secs(t0 + Duration::from_millis(12_001)), 13);
        assert_eq!(
            meter.settlements(t0 + Duration::from_millis(4_200)),
            vec![(0, 5)]
        );
        // Ending a little after the deadline never charges more than was granted.
        assert_eq!(meter.used_secs(t0 + Duration::from_millis(60_020)), 60);
        assert!(matches!(meter.poll(t0 + secs(50)), Next::Reserve { .. }));
        meter.on_grant(60);
        assert_eq!(
            meter.settlements(t0 + Duration::from_millis(61_500)),
            vec![(0, 60), (1, 2)]
        );
    }

    #[test]
    fn a_lead_longer_than_the_block_asks_at_once() {
        let config = MeterConfig {
            block_secs: 2,
            renew_lead: secs(10),
            retry: secs(1),
        };
        let t0 = Instant::now();
        let mut meter = VoiceMeter::new(config, t0, 2);
        assert_eq!(meter.poll(t0), Next::Reserve { seq: 1, amount: 2 });
    }
}
