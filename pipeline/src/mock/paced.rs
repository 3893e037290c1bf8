//! Response bodies written piece by piece on a schedule, with faults.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;

/// How long a cut waits after the last data, so that data reaches the client first.
const CUT_GRACE: Duration = Duration::from_millis(5);

/// One step of a paced body.
pub(crate) enum Paced {
    /// Wait, then send these bytes.
    Data(Duration, Bytes),
    /// Send these bytes at this instant (a time-to-first-byte counted from the request's
    /// arrival, whatever the mock spent preparing the answer).
    DataAt(tokio::time::Instant, Bytes),
    /// Wait, then go silent for the second duration, then break the connection.
    Stall(Duration, Duration),
    /// Wait, then break the connection mid-body.
    Cut(Duration),
}

/// A streaming body that plays `steps` in order.
pub(crate) fn body(steps: Vec<Paced>) -> Body {
    let s = stream::unfold(steps.into_iter(), |mut steps| async move {
        let step = steps.next()?;
        let (wait, item) = match step {
            Paced::Data(wait, bytes) => (wait, Ok(bytes)),
            Paced::DataAt(at, bytes) => (
                at.saturating_duration_since(tokio::time::Instant::now()),
                Ok(bytes),
            ),
            Paced::Stall(wait, silence) => {
                sleep(wait).await;
                sleep(silence).await;
                (
                    Duration::ZERO,
                    Err(std::io::Error::other("mock: stalled stream dropped")),
                )
            }
            // hyper discards body bytes it has not flushed when the body fails, so give the
            // bytes already "sent" a moment on the wire before the connection dies.
            Paced::Cut(wait) => (
                wait.max(CUT_GRACE),
                Err(std::io::Error::other("mock: connection cut mid-stream")),
            ),
        };
        sleep(wait).await;
        // An error item makes hyper abort the response: the client sees a broken body.
        let next = if item.is_err() {
            Vec::new().into_iter()
        } else {
            steps
        };
        Some((item, next))
    });
    Body::from_stream(s)
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
