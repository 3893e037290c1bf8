//! WHIP-style signaling over HTTP (RFC 9725 shape):
//!
//! - `POST /v1/calls` (`application/sdp` offer, `Authorization: Bearer …`) → `201` with the
//!   SDP answer, `Location: /v1/calls/{id}`, `ETag`, and one `Link: <…>; rel="ice-server"`
//!   per STUN/TURN URL;
//! - `PATCH /v1/calls/{id}` (`application/trickle-ice-sdpfrag`) → `204`;
//! - `DELETE /v1/calls/{id}` → `200`;
//! - `GET /v1/ice-servers` → `{"iceServers":[…]}` for pages that build their own
//!   `RTCPeerConnection` before offering.
//!
//! Errors are a status and `{"error":{"code","message"}}`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, patch, post},
};
use serde_json::json;
use tokio::sync::oneshot;

use super::{
    Media,
    command::Command,
    endpoint::Endpoint,
    trickle::parse_fragment,
    turn::{ice_servers_for, link_headers},
};
use crate::core::{
    Node,
    auth::{AuthError, Caller},
    http_error::ApiError,
    types::{CallId, DrainPhase},
    voice::Admission,
};

const SDP: &str = "application/sdp";
const SDP_FRAG: &str = "application/trickle-ice-sdpfrag";

/// What the signaling routes work with: the node and its media endpoint.
#[derive(Clone)]
struct Signaling {
    node: Node,
    media: Media,
}

/// The signaling routes.
pub(crate) fn routes(node: Node, media: Media) -> Router {
    let limit = node.config().max_sdp_bytes;
    Router::new()
        .route("/v1/calls", post(create_call))
        .route("/v1/calls/{id}", patch(trickle).delete(hang_up))
        .route("/v1/ice-servers", get(ice_servers))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Signaling { node, media })
}

async fn create_call(
    State(edge): State<Signaling>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if edge.node.drain_phase() != DrainPhase::Serving {
        return Err(ApiError::draining());
    }
    let caller = authenticate(&edge.node, &headers)?;
    require_content_type(&headers, SDP)?;
    let offer = body_text(body)?;
    let endpoint = endpoint(&edge.media).await?;
    // The first block of voice seconds is reserved before the offer is answered, so a caller
    // with none left gets a clean 429 instead of a call that ends at once.
    let admission = match edge.node.voice_sessions() {
        Some(voice) => voice
            .admit(&edge.node, &caller, bearer(&headers)?)
            .await
            .map_err(ApiError::from)?,
        None => Admission::unmetered(),
    };
    let (reply, answer) = oneshot::channel();
    let servers = ice_servers_for(&edge.node.config().ice_servers, &caller.user_id, unix_now());
    let user = caller.user_id.clone();
    endpoint
        .commands
        .send(Command::Create {
            caller,
            offer,
            admission,
            reply,
        })
        .await
        .map_err(|_| ApiError::unavailable())?;
    let created = answer.await.map_err(|_| ApiError::unavailable())??;
    tracing::info!(call = %created.id, %user, "call answered");

    let mut response = (StatusCode::CREATED, created.answer).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    h.insert(
        header::LOCATION,
        header_value(&format!("/v1/calls/{}", created.id)),
    );
    h.insert(header::ETAG, header_value(&etag(created.id)));
    for link in link_headers(&servers) {
        h.append(header::LINK, header_value(&link));
    }
    Ok(response)
}

async fn trickle(
    State(edge): State<Signaling>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let caller = authenticate(&edge.node, &headers)?;
    let id = call_id(&id)?;
    require_content_type(&headers, SDP_FRAG)?;
    if let Some(tag) = headers.get(header::IF_MATCH)
        && tag.as_bytes() != b"*"
        && tag.as_bytes() != etag(id).as_bytes()
    {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "etag_mismatch",
            "If-Match does not name this call's ICE session",
        ));
    }
    let frag = parse_fragment(&body_text(body)?)?;
    let endpoint = endpoint(&edge.media).await?;
    let (reply, done) = oneshot::channel();
    endpoint
        .commands
        .send(Command::Candidates {
            id,
            user_id: caller.user_id,
            frag,
            reply,
        })
        .await
        .map_err(|_| ApiError::unavailable())?;
    done.await.map_err(|_| ApiError::unavailable())??;
    Ok(StatusCode::NO_CONTENT)
}

async fn hang_up(
    State(edge): State<Signaling>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = authenticate(&edge.node, &headers)?;
    let id = call_id(&id)?;
    let endpoint = endpoint(&edge.media).await?;
    let (reply, done) = oneshot::channel();
    endpoint
        .commands
        .send(Command::HangUp {
            id,
            user_id: Some(caller.user_id),
            reply: Some(reply),
        })
        .await
        .map_err(|_| ApiError::unavailable())?;
    done.await.map_err(|_| ApiError::unavailable())??;
    Ok(StatusCode::OK)
}

async fn ice_servers(
    State(edge): State<Signaling>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = authenticate(&edge.node, &headers)?;
    let servers = ice_servers_for(&edge.node.config().ice_servers, &caller.user_id, unix_now());
    Ok(Json(json!({ "iceServers": servers })))
}

fn authenticate(node: &Node, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = bearer(headers)?;
    node.verifier().verify(token).map_err(|e| match e {
        AuthError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
        _ => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()),
    })
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("an Authorization: Bearer <token> header is required"))?;
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(unauthorized(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

fn require_content_type(headers: &HeaderMap, want: &str) -> Result<(), ApiError> {
    let got = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = got.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case(want) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
        format!("expected Content-Type: {want}, got `{got}`"),
    ))
}

fn body_text(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_body"
        };
        ApiError::new(status, code, rejection.body_text())
    })?;
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", "the body is not UTF-8"))
}

fn call_id(text: &str) -> Result<CallId, ApiError> {
    // A malformed id is just another call that does not exist.
    text.parse()
        .map_err(|()| ApiError::new(StatusCode::NOT_FOUND, "no_such_call", "no such call"))
}

async fn endpoint(media: &Media) -> Result<&Endpoint, ApiError> {
    media.endpoint().await.map_err(|e| {
        tracing::error!(error = %e, "WebRTC media endpoint unavailable");
        ApiError::unavailable()
    })
}

fn etag(id: CallId) -> String {
    format!("\"{id}\"")
}

fn header_value(text: &str) -> HeaderValue {
    // Every value here is built from hex ids, config URLs and quoted credentials.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
