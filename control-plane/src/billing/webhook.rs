//! Applies one verified Stripe event in one database transaction: record its id (a duplicate
//! stops here), resolve the account, apply the subscription's own newest state, recompute the
//! account's tier and write one audit row for a money event or a tier change.

use serde_json::Value;
use sqlx::AnyConnection;

use super::rules::{Entitlement, max_tier, snapshot_rank, supersedes};
use crate::db::billing::{self as store, AuditEntry, Subscription};
use crate::db::{Db, WriteTx};
use crate::tier::Tier;

/// What a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The event changed stored state (and maybe the tier).
    Applied,
    /// Seen before (a retry, or the same event at another node): nothing done.
    Duplicate,
    /// A snapshot older than the one stored: recorded, nothing changed.
    Stale,
    /// A type this service does not act on: recorded, nothing changed.
    Ignored,
    /// No account could be found for it: recorded, nothing changed (logged).
    Unmatched,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::Ignored => "ignored",
            Self::Unmatched => "unmatched",
        }
    }
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    /// The body is not a Stripe event (no id, type or creation time).
    #[error("not a Stripe event: {0}")]
    Malformed(&'static str),
    /// The database failed; nothing was committed and Stripe will retry.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Settings the rules need.
#[derive(Debug, Clone)]
pub(crate) struct Prices {
    pub(crate) plus: String,
    pub(crate) pro: String,
    pub(crate) grace_secs: i64,
}

impl Prices {
    fn tier_of_price(&self, price: &str) -> Option<Tier> {
        if price.is_empty() {
            None
        } else if price == self.plus {
            Some(Tier::Plus)
        } else if price == self.pro {
            Some(Tier::Pro)
        } else {
            None
        }
    }
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn int(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter()
        .try_fold(v, |v, key| v.get(key))
        .and_then(Value::as_i64)
}

/// A reference that may come as an id or as an expanded object.
fn id_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s),
        obj @ Value::Object(_) => text(obj, &["id"]),
        _ => None,
    }
}

/// Applies `event` (already verified) at `now`, committing before it returns `Ok`.
pub(crate) async fn apply(
    db: &Db,
    prices: &Prices,
    event: &Value,
    now: i64,
) -> Result<Outcome, ApplyError> {
    let id = text(event, &["id"]).ok_or(ApplyError::Malformed("id"))?;
    let kind = text(event, &["type"]).ok_or(ApplyError::Malformed("type"))?;
    let created = int(event, &["created"]).ok_or(ApplyError::Malformed("created"))?;
    let object = event
        .get("data")
        .and_then(|d| d.get("object"))
        .ok_or(ApplyError::Malformed("data.object"))?;
    let mut tx = db.begin().await?;
    if !store::claim_event(&mut tx, id, kind, created, now).await? {
        return Ok(Outcome::Duplicate);
    }
    let ctx = Ctx {
        prices,
        event_id: id,
        kind,
        created,
        now,
    };
    let outcome = match kind {
        "checkout.session.completed" => ctx.checkout_completed(&mut tx, object).await?,
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => ctx.subscription_snapshot(&mut tx, object).await?,
        "invoice.payment_succeeded" | "invoice.payment_failed" => {
            ctx.invoice(&mut tx, object).await?
        }
        _ => Outcome::Ignored,
    };
    store::set_outcome(&mut tx, id, outcome.as_str()).await?;
    tx.commit().await?;
    if outcome == Outcome::Unmatched {
        tracing::warn!(event_id = id, kind, "Stripe event names no known account");
    }
    Ok(outcome)
}

struct Ctx<'a> {
    prices: &'a Prices,
    event_id: &'a str,
    kind: &'a str,
    created: i64,
    now: i64,
}

impl Ctx<'_> {
    /// `checkout.session.completed`: ties the subscription and customer to the account named
    /// by `client_reference_id` (set by us when creating the session).
    async fn checkout_completed(
        &self,
        tx: &mut WriteTx,
        session: &Value,
    ) -> Result<Outcome, sqlx::Error> {
        let (Some(profile), Some(sub_id)) = (
            text(session, &["client_reference_id"]),
            id_of(session, "subscription"),
        ) else {
            return Ok(Outcome::Ignored);
        };
        let Some(tier_before) = store::lock_profile(tx, profile).await? else {
            return Ok(Outcome::Unmatched);
        };
        let tier = text(session, &["metadata", "tier"])
            .and_then(Tier::parse)
            .unwrap_or(Tier::Free);
        let customer = id_of(session, "customer").map(str::to_owned);
        let paid = text(session, &["payment_status"]) == Some("paid");
        let sub = match store::by_stripe_id(tx, sub_id).await? {
            // A snapshot arrived first: it knows better; only fill in the customer.
            Some(mut s) => {
                s.stripe_customer_id = s.stripe_customer_id.or(customer);
                s
            }
            None => Subscription {
                profile_id: profile.to_owned(),
                tier: tier.as_str().to_owned(),
                status: if paid { "active" } else { "incomplete" }.to_owned(),
                stripe_customer_id: customer,
                stripe_subscription_id: sub_id.to_owned(),
                current_period_end: None,
                cancel_at_period_end: false,
                grace_until: None,
                // Any real snapshot of the subscription replaces this one.
                snapshot_at: 0,
                snapshot_rank: 0,
                paid_at: if paid { self.created } else { 0 },
                updated_at: self.now,
            },
        };
        store::upsert(tx, &sub, self.now).await?;
        let money = Money {
            amount: int(session, &["amount_total"]),
            currency: text(session, &["currency"]),
        };
        self.settle(tx, profile, &tier_before, Some(money)).await?;
        Ok(Outcome::Applied)
    }

    /// `customer.subscription.*`: the subscription's own state, applied unless an equally new
    /// or newer snapshot is already stored.
    async fn subscription_snapshot(
        &self,
        tx: &mut WriteTx,
        sub: &Value,
    ) -> Result<Outcome, sqlx::Error> {
        let Some(sub_id) = text(sub, &["id"]) else {
            return Ok(Outcome::Ignored);
        };
        let customer = id_of(sub, "customer");
        let stored = store::by_stripe_id(tx, sub_id).await?;
        let profile = match (text(sub, &["metadata", "profile_id"]), &stored, customer) {
            (Some(p), _, _) => Some(p.to_owned()),
            (None, Some(s), _) => Some(s.profile_id.clone()),
            (None, None, Some(c)) => store::profile_of_customer(tx, c).await?,
            (None, None, None) => None,
        };
        let Some(profile) = profile else {
            return Ok(Outcome::Unmatched);
        };
        let Some(tier_before) = store::lock_profile(tx, &profile).await? else {
            return Ok(Outcome::Unmatched);
        };
        // Read again under the account's lock: another event may have just written it.
        let stored = store::by_stripe_id(tx, sub_id).await?;
        let rank = snapshot_rank(self.kind);
        if let Some(s) = &stored
            && !supersedes(
                (s.snapshot_at, s.snapshot_rank),
                &s.status,
                (self.created, rank),
            )
        {
            return Ok(Outcome::Stale);
        }
        let item = sub
            .get("items")
            .and_then(|i| i.get("data"))
            .and_then(|d| d.get(0));
        let price = item.and_then(|i| text(i, &["price", "id"])).unwrap_or("");
        let tier = self
            .prices
            .tier_of_price(price)
            .or_else(|| stored.as_ref().and_then(|s| Tier::parse(&s.tier)))
            .or_else(|| text(sub, &["metadata", "tier"]).and_then(Tier::parse));
        let Some(tier) = tier else {
            tracing::warn!(
                event_id = self.event_id,
                price,
                "subscription for an unknown price"
            );
            return Ok(Outcome::Ignored);
        };
        let status = if self.kind == "customer.subscription.deleted" {
            "canceled"
        } else {
            text(sub, &["status"]).unwrap_or("incomplete")
        };
        // Newer API versions carry the period on the item, older ones on the subscription.
        let period_end = int(sub, &["current_period_end"])
            .or_else(|| item.and_then(|i| int(i, &["current_period_end"])));
        let paid_at = stored.as_ref().map_or(0, |s| s.paid_at);
        let grace_until = match status {
            // Past due with no grace running: a payment failed (its invoice event may be late
            // or lost); the grace runs from this snapshot, unless a payment newer than the
            // snapshot already succeeded (a late `past_due` must not start a grace).
            "past_due" | "unpaid" => stored
                .as_ref()
                .and_then(|s| s.grace_until)
                .or((self.created > paid_at).then_some(self.created + self.prices.grace_secs)),
            _ => None,
        };
        let next = Subscription {
            profile_id: profile.clone(),
            tier: tier.as_str().to_owned(),
            status: status.to_owned(),
            stripe_customer_id: customer
                .map(str::to_owned)
                .or_else(|| stored.as_ref().and_then(|s| s.stripe_customer_id.clone())),
            stripe_subscription_id: sub_id.to_owned(),
            current_period_end: period_end,
            cancel_at_period_end: sub
                .get("cancel_at_period_end")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            grace_until,
            snapshot_at: self.created,
            snapshot_rank: rank,
            paid_at,
            updated_at: self.now,
        };
        store::upsert(tx, &next, self.now).await?;
        self.settle(tx, &profile, &tier_before, None).await?;
        Ok(Outcome::Applied)
    }

    /// `invoice.payment_succeeded|failed`: a money event; a failure starts the grace, a later
    /// success ends it.
    async fn invoice(&self, tx: &mut WriteTx, invoice: &Value) -> Result<Outcome, sqlx::Error> {
        let sub_id = id_of(invoice, "subscription")
            .or_else(|| text(invoice, &["parent", "subscription_details", "subscription"]));
        let stored = match sub_id {
            Some(id) => store::by_stripe_id(tx, id).await?,
            None => None,
        };
        let metadata_profile = text(invoice, &["subscription_details", "metadata", "profile_id"])
            .or_else(|| {
                text(
                    invoice,
                    &["parent", "subscription_details", "metadata", "profile_id"],
                )
            });
        let profile = match (&stored, metadata_profile, id_of(invoice, "customer")) {
            (Some(s), _, _) => Some(s.profile_id.clone()),
            (None, Some(p), _) => Some(p.to_owned()),
            (None, None, Some(c)) => store::profile_of_customer(tx, c).await?,
            (None, None, None) => None,
        };
        let Some(profile) = profile else {
            return Ok(Outcome::Unmatched);
        };
        let Some(tier_before) = store::lock_profile(tx, &profile).await? else {
            return Ok(Outcome::Unmatched);
        };
        let succeeded = self.kind == "invoice.payment_succeeded";
        if let Some(id) = sub_id
            && let Some(mut s) = store::by_stripe_id(tx, id).await?
        {
            if succeeded {
                s.paid_at = s.paid_at.max(self.created);
                // A success at or after the failure that started the grace ends it.
                if s.grace_until
                    .is_some_and(|g| self.created >= g - self.prices.grace_secs)
                {
                    s.grace_until = None;
                }
            } else if self.created > s.paid_at && s.grace_until.is_none() {
                s.grace_until = Some(self.created + self.prices.grace_secs);
            }
            s.updated_at = self.now;
            store::upsert(tx, &s, self.now).await?;
        }
        let amount = if succeeded {
            int(invoice, &["amount_paid"])
        } else {
            int(invoice, &["amount_due"])
        };
        let money = Money {
            amount,
            currency: text(invoice, &["currency"]),
        };
        self.settle(tx, &profile, &tier_before, Some(money)).await?;
        Ok(Outcome::Applied)
    }

    /// Recomputes the account's tier from its subscriptions and writes the audit row: one per
    /// money event, one per tier change, one when the event is both.
    async fn settle(
        &self,
        tx: &mut WriteTx,
        profile: &str,
        tier_before: &str,
        money: Option<Money<'_>>,
    ) -> Result<(), sqlx::Error> {
        let tier = recompute(tx, profile, self.now).await?;
        let changed = store::set_tier_if_changed(tx, profile, tier.as_str()).await?;
        if !changed && money.is_none() {
            return Ok(());
        }
        let entry = AuditEntry {
            event_id: Some(self.event_id.to_owned()),
            kind: self.kind.to_owned(),
            from_tier: tier_before.to_owned(),
            to_tier: tier.as_str().to_owned(),
            amount_cents: money.as_ref().and_then(|m| m.amount),
            currency: money.and_then(|m| m.currency).map(str::to_owned),
            created_at: self.now,
        };
        store::audit(tx, profile, &entry).await?;
        if changed {
            tracing::info!(
                profile_id = profile,
                event_id = self.event_id,
                from = tier_before,
                to = tier.as_str(),
                "tier changed by billing"
            );
        }
        Ok(())
    }
}

struct Money<'a> {
    amount: Option<i64>,
    currency: Option<&'a str>,
}

/// The best tier any of the account's subscriptions gives at `now`.
pub(crate) async fn recompute(
    conn: &mut AnyConnection,
    profile: &str,
    now: i64,
) -> Result<Tier, sqlx::Error> {
    let subs = store::of_profile(conn, profile).await?;
    Ok(subs.iter().fold(Tier::Free, |best, s| {
        let e = Entitlement {
            tier: Tier::parse(&s.tier).unwrap_or(Tier::Free),
            status: &s.status,
            cancel_at_period_end: s.cancel_at_period_end,
            current_period_end: s.current_period_end,
            grace_until: s.grace_until,
        };
        max_tier(best, e.tier_at(now))
    }))
}

/// Moves accounts whose grace or cancelled period ended by `now` (and that no later event
/// moved) to the tier their subscriptions still give, with an audit row each. Returns how many
/// accounts changed tier.
pub(crate) async fn sweep(db: &Db, now: i64) -> Result<usize, sqlx::Error> {
    let mut changed = 0;
    for profile in store::due_for_sweep(db, now).await? {
        let mut tx = db.begin().await?;
        let Some(before) = store::lock_profile(&mut tx, &profile).await? else {
            continue;
        };
        let tier = recompute(&mut tx, &profile, now).await?;
        // Conditional: two nodes sweeping at once change (and audit) an account once.
        if store::set_tier_if_changed(&mut tx, &profile, tier.as_str()).await? {
            let entry = AuditEntry {
                event_id: None,
                kind: "period_or_grace_ended".to_owned(),
                from_tier: before.clone(),
                to_tier: tier.as_str().to_owned(),
                amount_cents: None,
                currency: None,
                created_at: now,
            };
            store::audit(&mut tx, &profile, &entry).await?;
            changed += 1;
            tracing::info!(
                profile_id = profile,
                from = before,
                to = tier.as_str(),
                "tier changed by billing sweep"
            );
        }
        tx.commit().await?;
    }
    Ok(changed)
}
