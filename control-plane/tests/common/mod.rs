//! Test harness: the control plane on fresh storage and its client come from `test-support`
//! (shared with the gateway's and the companion's tests); the stand-ins for an identity
//! provider (sign-in tests) and for Stripe (billing tests) live here.
#![allow(dead_code, unused_imports, unreachable_pub)]

pub mod mock_idp;
pub mod mock_stripe;

pub use test_support::control_plane::*;
