//! `Authorization: Bearer <product access token>`: the "API key" of OpenAI clients is the
//! caller's own access token, verified locally like every other gateway request. The token is
//! kept, because quota calls to the control plane are made with it (the control plane then
//! knows whose quota to spend without trusting the gateway).

use axum::http::{HeaderMap, header};

use super::error::OpenAiError;
use crate::core::{
    Node,
    auth::{AuthError, Caller},
};

/// A verified caller and the token they proved it with.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub(crate) caller: Caller,
    pub(crate) token: String,
}

pub(crate) fn authenticate(node: &Node, headers: &HeaderMap) -> Result<Authenticated, OpenAiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        OpenAiError::invalid_api_key(
            "You didn't provide an API key: send your access token as `Authorization: Bearer <token>`",
        )
    })?;
    let value = value
        .to_str()
        .map_err(|_| OpenAiError::invalid_api_key("the Authorization header is not text"))?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(OpenAiError::invalid_api_key(
                "the Authorization header must be `Bearer <token>`",
            ));
        }
    };
    if token.is_empty() {
        return Err(OpenAiError::invalid_api_key("the bearer token is empty"));
    }
    let caller = node.verifier().verify(token).map_err(|e| match e {
        AuthError::Forbidden(_) => OpenAiError::forbidden(e.to_string()),
        _ => OpenAiError::invalid_api_key(e.to_string()),
    })?;
    Ok(Authenticated {
        caller,
        token: token.to_owned(),
    })
}
