//! Subscription tiers and what each allows (sans-IO: plain data).

use serde::{Deserialize, Serialize};

/// A subscription tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// No subscription.
    Free,
    /// $14.99 a month.
    Plus,
    /// $24.99 a month.
    Pro,
}

/// What a tier allows. `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TierLimits {
    /// Chat messages per UTC day.
    pub messages_per_day: Option<u64>,
    /// Voice-call minutes per UTC day.
    pub voice_minutes_per_day: Option<u64>,
    /// Hours of game sessions per UTC day.
    pub gaming_hours_per_day: Option<u64>,
    /// Companions with a custom avatar.
    pub custom_avatars: Option<u64>,
    /// API requests per hour.
    pub api_requests_per_hour: u64,
    /// Monthly price in US cents.
    pub price_cents: u32,
}

impl Tier {
    /// The tier's name as stored and as carried in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Plus => "plus",
            Self::Pro => "pro",
        }
    }

    /// Parses a stored tier name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "free" => Some(Self::Free),
            "plus" => Some(Self::Plus),
            "pro" => Some(Self::Pro),
            _ => None,
        }
    }

    /// The tier's limits.
    pub fn limits(self) -> TierLimits {
        match self {
            Self::Free => TierLimits {
                messages_per_day: Some(50),
                voice_minutes_per_day: Some(5),
                gaming_hours_per_day: Some(0),
                custom_avatars: Some(0),
                api_requests_per_hour: 1_000,
                price_cents: 0,
            },
            Self::Plus => TierLimits {
                messages_per_day: Some(500),
                voice_minutes_per_day: Some(60),
                gaming_hours_per_day: Some(2),
                custom_avatars: Some(5),
                api_requests_per_hour: 5_000,
                price_cents: 1_499,
            },
            Self::Pro => TierLimits {
                messages_per_day: None,
                voice_minutes_per_day: None,
                gaming_hours_per_day: None,
                custom_avatars: None,
                api_requests_per_hour: 50_000,
                price_cents: 2_499,
            },
        }
    }

    /// Permissions carried in this tier's access tokens.
    pub fn permissions(self) -> Vec<String> {
        let mut p = vec!["chat".to_owned(), "voice".to_owned()];
        if self != Self::Free {
            p.push("games".to_owned());
            p.push("custom_avatars".to_owned());
        }
        p
    }
}
