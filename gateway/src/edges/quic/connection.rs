//! One connection (raw QUIC or a WebTransport session): the server's control stream with
//! `hello` and `goodbye`, and one task per request stream.

use std::{sync::Arc, time::Duration};

use protocol::{
    MAX_EVENT_BYTES, MAX_FRAME_PAYLOAD, PROTOCOL_VERSION, ServerEvent,
    control::{Goodbye, GoodbyeReason, Hello},
};
use tokio::{sync::watch, task::JoinSet, time::Instant};
use web_transport_quinn::{SendStream, Session};

use super::{
    codes::AppCode,
    stream::{self, Authenticated, StreamContext},
    stream_core::FrameWriter,
};

/// The endpoint's drain state, watched by every connection: `None` while serving, else the
/// deadline by which every connection closes.
pub(crate) type Drain = watch::Receiver<Option<Instant>>;

/// Clients are told to wait this long before reconnecting when the node drains, spreading
/// the reconnect storm.
const RECONNECT_AFTER_MS: u64 = 250;

/// Serves `session` until the client closes it, it times out, or the drain deadline passes.
/// A connection whose first authenticated request has not started within `auth_timeout` is
/// closed with `timeout`: the server's own keep-alives would otherwise keep a connection that
/// never opens a stream (or only ones that never authenticate) alive forever.
pub(crate) async fn serve(
    session: Session,
    connection_id: String,
    ctx: Arc<StreamContext>,
    mut drain: Drain,
    keep_alive: Duration,
    auth_timeout: Duration,
    raw: bool,
) {
    let auth_by = Instant::now() + auth_timeout;
    let authenticated: Authenticated = Arc::default();
    let mut authed = false;
    // Bounded: a client that grants no stream credit must not keep its requests waiting.
    let control = open_control(&session, &connection_id, keep_alive);
    let mut control = tokio::time::timeout(Duration::from_secs(2), control)
        .await
        .ok()
        .flatten();
    let mut streams = JoinSet::new();
    let mut deadline = None;
    if let Some(at) = *drain.borrow_and_update() {
        deadline = Some(at);
    }
    let mut goodbye_sent = false;
    loop {
        if let Some(at) = deadline {
            if !goodbye_sent {
                goodbye_sent = true;
                send_goodbye(&mut control, at).await;
            }
            if streams.is_empty() {
                // Nothing live: close now rather than at the deadline.
                session.close(AppCode::NO_ERROR.0, b"server draining");
                break;
            }
        }
        tokio::select! {
            accepted = session.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    let draining = deadline.is_some();
                    let stream = stream::serve(send, recv, ctx.clone(), draining, authenticated.clone());
                    streams.spawn(stream);
                }
                // Closed by the client, timed out, or lost.
                Err(_) => break,
            },
            // Raw clients have no use for unidirectional streams; refuse them so they do
            // not hold stream credit. (WebTransport's own are handled by the session.)
            accepted = session.accept_uni(), if raw => match accepted {
                Ok(mut recv) => {
                    let _ = recv.stop(AppCode::BAD_REQUEST.0);
                }
                Err(_) => break,
            },
            Some(_) = streams.join_next() => {}
            () = authenticated.notified(), if !authed => authed = true,
            () = tokio::time::sleep_until(auth_by), if !authed => {
                tracing::debug!(connection = %connection_id, "QUIC connection never authenticated: closing");
                session.close(AppCode::TIMEOUT.0, b"no authenticated request in time");
                break;
            }
            changed = drain.changed(), if deadline.is_none() => {
                if changed.is_err() {
                    // The endpoint is gone.
                    session.close(AppCode::SERVER_DRAINING.0, b"server stopped");
                    break;
                }
                deadline = *drain.borrow_and_update();
            }
            () = sleep_until(deadline) => {
                session.close(AppCode::SERVER_DRAINING.0, b"drain deadline passed");
                break;
            }
        }
    }
    // Dropping the set aborts streams still running (their replies are cancelled).
    streams.shutdown().await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The server's unidirectional control stream, opened with `hello`. `None` when the client
/// gives no stream credit for it (then it gets no `hello`/`goodbye`, and nothing else breaks).
async fn open_control(
    session: &Session,
    connection_id: &str,
    keep_alive: Duration,
) -> Option<(SendStream, FrameWriter)> {
    let mut send = match session.open_uni().await {
        Ok(send) => send,
        Err(error) => {
            tracing::debug!(%error, "no QUIC control stream");
            return None;
        }
    };
    let mut writer = FrameWriter::new();
    let hello = ServerEvent::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        connection_id: connection_id.to_owned(),
        max_event_bytes: u32::try_from(MAX_EVENT_BYTES).unwrap_or(u32::MAX),
        max_frame_payload: u32::try_from(MAX_FRAME_PAYLOAD).unwrap_or(u32::MAX),
        heartbeat_interval_ms: u32::try_from(keep_alive.as_millis()).unwrap_or(u32::MAX),
    });
    let wire = writer.encode(&hello).ok()?;
    send.write_chunk(wire).await.ok()?;
    Some((send, writer))
}

async fn send_goodbye(control: &mut Option<(SendStream, FrameWriter)>, deadline: Instant) {
    let Some((send, writer)) = control else {
        return;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let goodbye = ServerEvent::Goodbye(Goodbye {
        reason: GoodbyeReason::Draining,
        deadline_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
        reconnect_after_ms: Some(RECONNECT_AFTER_MS),
    });
    if let Ok(wire) = writer.encode(&goodbye) {
        // Bounded: a client that gives no flow-control credit must not hold the drain up.
        let write = tokio::time::timeout(Duration::from_secs(1), send.write_chunk(wire));
        let _ = write.await;
        let _ = send.finish();
    }
}
