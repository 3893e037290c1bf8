//! A reservation that always gets settled: explicitly when a request ends, or from `Drop`
//! when the client went away midway (hyper drops the handler or the body stream), in which
//! case the settle call runs in the background.

use futures_util::{Stream, StreamExt};
use pipeline::PipelineError;

use crate::core::control_plane::quota::{QuotaClient, Reservation};

use super::error::OpenAiError;

/// Settles its reservation exactly once, with the last `used` set.
#[derive(Debug)]
pub(crate) struct Settlement {
    quota: QuotaClient,
    token: String,
    reservation: Option<Reservation>,
    used: u64,
}

impl Settlement {
    /// Nothing is counted as used until [`set_used`](Self::set_used) says so.
    pub(crate) fn new(quota: QuotaClient, token: String, reservation: Reservation) -> Self {
        Self {
            quota,
            token,
            reservation: Some(reservation),
            used: 0,
        }
    }

    /// What to settle with if the request ends without [`finish`](Self::finish).
    pub(crate) fn set_used(&mut self, used: u64) {
        self.used = used;
    }

    /// Settles now with `used`.
    pub(crate) async fn finish(&mut self, used: u64) {
        self.used = used;
        self.settle_now().await;
    }

    /// The first item of a provider stream, which decides between a clean error status and a
    /// 200 stream. When the provider fails (`stage` names it) or ends before its first item
    /// (`empty` says how), nothing was used: the reservation is settled at 0.
    pub(crate) async fn first_or_refund<T>(
        &mut self,
        stream: &mut (impl Stream<Item = Result<T, PipelineError>> + Unpin),
        stage: &str,
        empty: &'static str,
    ) -> Result<T, OpenAiError> {
        let error = match stream.next().await {
            Some(Ok(first)) => return Ok(first),
            Some(Err(e)) => OpenAiError::from_pipeline(stage, &e),
            None => OpenAiError::unavailable("provider_unavailable", empty),
        };
        self.finish(0).await;
        Err(error)
    }

    /// Settles now with the last `used` set.
    pub(crate) async fn settle_now(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            self.quota
                .settle(&self.token, &reservation, self.used)
                .await;
        }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(key = %reservation.key, "no runtime to settle a quota reservation");
            return;
        };
        let (quota, token, used) = (
            self.quota.clone(),
            std::mem::take(&mut self.token),
            self.used,
        );
        runtime.spawn(async move { quota.settle(&token, &reservation, used).await });
    }
}
