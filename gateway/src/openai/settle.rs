//! A reservation that always gets settled: explicitly when a request ends, or from `Drop`
//! when the client went away midway (hyper drops the handler or the body stream), in which
//! case the settle call runs in the background.

use super::quota::{QuotaClient, Reservation};

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
