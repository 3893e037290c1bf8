//! What a subscription entitles its account to, and which snapshot of it wins (sans-IO: the
//! stored state and the time come in as arguments).

use crate::tier::Tier;

/// A subscription as far as entitlement goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entitlement<'a> {
    pub(crate) tier: Tier,
    /// Stripe's status: `active`, `trialing`, `past_due`, `unpaid`, `canceled`, `incomplete`...
    pub(crate) status: &'a str,
    pub(crate) cancel_at_period_end: bool,
    pub(crate) current_period_end: Option<i64>,
    /// Set by a failed payment: the tier is kept until then.
    pub(crate) grace_until: Option<i64>,
}

impl Entitlement<'_> {
    /// The tier this subscription gives at `now`.
    pub(crate) fn tier_at(&self, now: i64) -> Tier {
        // Ended or never paid: nothing a grace or a period could keep (a late failed-payment
        // event must not revive a cancelled subscription).
        if matches!(
            self.status,
            "canceled" | "incomplete" | "incomplete_expired" | "paused"
        ) {
            return Tier::Free;
        }
        // A subscription cancelled at period end is paid up to that moment, not beyond, even if
        // Stripe's `deleted` event is late or lost.
        if self.cancel_at_period_end && self.current_period_end.is_some_and(|end| end <= now) {
            return Tier::Free;
        }
        // After a failed payment the tier is kept through the grace, whatever the status says.
        if let Some(until) = self.grace_until {
            return if until > now { self.tier } else { Tier::Free };
        }
        match self.status {
            // `past_due` with no grace running: paid again (a later successful payment cleared
            // the grace) while the newest snapshot we hold still says past due.
            "active" | "trialing" | "past_due" => self.tier,
            _ => Tier::Free,
        }
    }
}

/// The order of snapshot kinds taken within one second: a subscription is created, then
/// updated, then deleted.
pub(crate) fn snapshot_rank(event_type: &str) -> i64 {
    match event_type {
        "customer.subscription.created" => 0,
        "customer.subscription.updated" => 1,
        _ => 2,
    }
}

/// Whether a snapshot taken at `(at, rank)` replaces the stored one: it must not be older (by
/// the event's own time, then its kind), and a cancelled subscription never comes back (Stripe
/// cannot reactivate one), so only another `deleted` may follow it.
pub(crate) fn supersedes(stored: (i64, i64), stored_status: &str, incoming: (i64, i64)) -> bool {
    if stored_status == "canceled" && incoming.1 < 2 {
        return false;
    }
    incoming >= stored
}

/// The higher of two tiers.
pub(crate) fn max_tier(a: Tier, b: Tier) -> Tier {
    let rank = |t: Tier| match t {
        Tier::Free => 0,
        Tier::Plus => 1,
        Tier::Pro => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(status: &str) -> Entitlement<'_> {
        Entitlement {
            tier: Tier::Plus,
            status,
            cancel_at_period_end: false,
            current_period_end: Some(1_000),
            grace_until: None,
        }
    }

    #[test]
    fn a_failed_payment_keeps_the_tier_through_the_grace_and_not_after() {
        let failed = Entitlement {
            grace_until: Some(500),
            ..sub("past_due")
        };
        assert_eq!(failed.tier_at(499), Tier::Plus);
        assert_eq!(failed.tier_at(500), Tier::Free);
        assert_eq!(sub("unpaid").tier_at(0), Tier::Free);
        assert_eq!(sub("canceled").tier_at(0), Tier::Free);
        assert_eq!(sub("active").tier_at(0), Tier::Plus);
        // A failure reported after the subscription ended gives no grace.
        let ended = Entitlement {
            grace_until: Some(500),
            ..sub("canceled")
        };
        assert_eq!(ended.tier_at(0), Tier::Free);
    }

    #[test]
    fn a_cancelled_subscription_lasts_to_its_period_end() {
        let cancelling = Entitlement {
            cancel_at_period_end: true,
            ..sub("active")
        };
        assert_eq!(cancelling.tier_at(999), Tier::Plus);
        assert_eq!(cancelling.tier_at(1_000), Tier::Free);
    }

    #[test]
    fn older_snapshots_lose_whatever_order_they_arrive_in() {
        // `updated` applied first; the `created` of the same second arrives late.
        assert!(!supersedes((100, 1), "active", (100, 0)));
        assert!(!supersedes((100, 0), "active", (99, 1)));
        assert!(supersedes((100, 0), "active", (100, 1)));
        assert!(supersedes((100, 1), "active", (101, 1)));
        // Nothing brings a cancelled subscription back.
        assert!(!supersedes((100, 2), "canceled", (200, 1)));
        assert_eq!(max_tier(Tier::Pro, Tier::Plus), Tier::Pro);
    }
}
