//! WebRTC signaling's own refusals as the node's HTTP errors.

use axum::http::StatusCode;

use super::{
    offer::OfferError,
    registry::{CallOpError, CreateError},
    trickle::FragmentError,
};
use crate::core::http_error::ApiError;

impl From<CreateError> for ApiError {
    fn from(e: CreateError) -> Self {
        let message = e.to_string();
        match e {
            CreateError::Offer(OfferError::NoOpus) => {
                Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "no_opus", message)
            }
            CreateError::Offer(_) | CreateError::Negotiation(_) => {
                Self::new(StatusCode::BAD_REQUEST, "bad_offer", message)
            }
            CreateError::TooManyCalls { .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_calls", message)
            }
            CreateError::Draining => Self::draining(),
            _ => Self::new(StatusCode::SERVICE_UNAVAILABLE, "node_full", message),
        }
    }
}

impl From<CallOpError> for ApiError {
    fn from(e: CallOpError) -> Self {
        let message = e.to_string();
        match e {
            CallOpError::NotFound => Self::new(StatusCode::NOT_FOUND, "no_such_call", message),
            CallOpError::IceRestart => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ice_restart_unsupported",
                message,
            ),
            _ => Self::new(StatusCode::CONFLICT, "call_state", message),
        }
    }
}

impl From<FragmentError> for ApiError {
    fn from(e: FragmentError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_fragment", e.to_string())
    }
}
