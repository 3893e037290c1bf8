use protocol::Secret;
use serde::{Deserialize, Serialize};

/// The `[control_plane]` section of the service configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where accounts, conversations and usage live. `sqlite://` runs embedded; `postgres://`
    /// is the multi-node configuration. Default: `sqlite://data/companion.sqlite?mode=rwc`.
    /// A printed configuration shows it without its password.
    #[serde(serialize_with = "crate::error::serialize_redacted")]
    pub database_url: String,
    /// How long start-up waits for the database before giving up, in seconds. Default: 10.
    pub database_connect_timeout_secs: u64,
    /// Redis for shared rate limits across nodes; empty keeps limits in process. Default: empty.
    /// A printed configuration shows it without its password.
    #[serde(serialize_with = "crate::error::serialize_redacted")]
    pub redis_url: String,
    /// Prefix for every Redis key this service writes, so several deployments (or tests) can
    /// share one Redis. Default: `cp:`.
    pub redis_key_prefix: String,
    /// The `iss` claim of access tokens this service signs. Default: `companion-control-plane`.
    pub issuer: String,
    /// The `aud` claim of access tokens (what the gateway checks). Default: `companion`.
    pub audience: String,
    /// Lifetime of an access token in seconds. Default: 900 (15 minutes).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token (and so of an idle session) in seconds. Default: 2,592,000
    /// (30 days).
    pub refresh_token_ttl_secs: u64,
    /// Live sessions (refresh-token families) one account may hold; signing in once more revokes
    /// the oldest. Default: 3.
    pub max_sessions: u32,
    /// A signing key older than this is replaced, at start-up or while running, by whichever
    /// node notices first (rotation is serialised through the database); the old key stays
    /// published until the tokens it signed have expired. Default: 2,592,000 (30 days).
    pub signing_key_rotation_secs: u64,
    /// Seconds between two reads of the newest signing key from the database. Every node signs
    /// with the newest key, so a key rotated by another node is picked up within this time,
    /// and a retired key stays published this much longer. Default: 60.
    pub signing_key_reload_secs: u64,
    /// Encrypts signing keys at rest (AES-256-GCM under a key derived from this value with
    /// HKDF-SHA256). Set it from the environment (`COMPANION__CONTROL_PLANE__SIGNING_KEY_SECRET`)
    /// rather than a file. Empty stores keys unencrypted and logs a warning at start-up; once
    /// a key was stored encrypted, start-up refuses to run without the secret. Default: empty.
    pub signing_key_secret: Secret,
    /// Credentials of the data plane: a request that records what only the server may write
    /// (`/api/chat/turns` and a turn's reply, `/api/quota/reserve|settle`) must carry one of
    /// these in the `X-Service-Token` header next to the user's bearer token, so a user's own
    /// token can never refund a message or settle a reservation. Several may be listed so the
    /// credential can be rotated without downtime. Empty refuses those routes to everyone
    /// (`companion --mode all` generates one for its own gateway). Default: empty.
    pub service_tokens: Vec<Secret>,
    /// Password hashing cost (argon2id). Defaults are OWASP's recommendation.
    pub argon2: Argon2Config,
    /// Largest request body accepted, in bytes; larger bodies get 413. Default: 65,536.
    pub max_body_bytes: usize,
    /// Per-endpoint rate limits, matched by path prefix (first match wins). Default: `/api/chat`
    /// 100/hour, `/api/voice` 50/hour, `/api/auth/refresh` 60 per 15 minutes (`refresh`),
    /// `/api/auth` 10 per 15 minutes, `/api/subscription` 20/hour.
    pub rate_limits: Vec<RateLimitRule>,
    /// Also limit every signed-in `/api/` request to the tier's hourly allowance (free 1,000,
    /// plus 5,000, pro 50,000). Default: true.
    pub tier_api_limits: bool,
    /// LLM provider base URL probed by readiness (any HTTP answer counts as reachable); empty
    /// skips the check. Default: empty.
    pub llm_url: String,
    /// Stripe billing: checkout, portal, cancellation and signed webhooks (see the README's
    /// billing section). Off by default.
    pub stripe: StripeConfig,
    /// Sign-in providers (OAuth2 authorization code + PKCE). Default: none.
    pub oauth_providers: Vec<OAuthProvider>,
    /// The moderation hook user chat messages pass (blocked terms, link cap).
    pub moderation: crate::moderation::ModerationConfig,
    /// Password hashes (argon2, ~19 MiB each) computed at once; more wait in a queue. `0` means
    /// the number of CPU cores. Default: 0.
    pub password_hash_concurrency: u32,
    /// Longest wait in that queue, in milliseconds; a request that would wait longer is answered
    /// 503 `busy` with `Retry-After`. Default: 1,000.
    pub password_hash_queue_ms: u64,
    /// How long after a refresh the token it replaced may be presented once more (two tabs
    /// refreshing one session at once) and still get a new pair of the same session instead of
    /// ending it. `0` turns the grace off. Default: 10.
    pub refresh_reuse_grace_secs: u64,
    /// Absolute lifetime of a session (refresh-token family) from its sign-in, in seconds;
    /// after it refresh answers 401 `session_expired`. Default: 2,592,000 (30 days).
    pub session_max_age_secs: u64,
    /// An account without a password may set one only within this many seconds of signing in
    /// (a fresh sign-in proves it is the owner, not someone holding a stolen token). Default: 300.
    pub reauth_window_secs: u64,
    /// E-mail ownership verification (sign-up sends a link).
    pub email: EmailConfig,
    /// How long connecting to Redis (TCP, TLS, `AUTH`) may take, at start-up and on each
    /// reconnect, in milliseconds. Default: 2,000.
    pub redis_connect_timeout_ms: u64,
    /// How long one Redis command may take before it fails, in milliseconds. Default: 500.
    pub redis_command_timeout_ms: u64,
    /// Longest pause between reconnect attempts after Redis goes away, in milliseconds; the
    /// client retries forever, from 100 ms doubling up to this. Default: 5,000.
    pub redis_reconnect_max_delay_ms: u64,
    /// Overall deadline for the rate-limit checks of one request, in milliseconds. A check that
    /// misses it is treated as a Redis failure (see `rate_limit_fail_closed`), so a slow or
    /// restarting Redis delays requests by at most this much. Default: 250.
    pub rate_limit_deadline_ms: u64,
    /// Names of the rules that fail closed when Redis cannot answer: they keep being enforced
    /// per node by an in-process window until Redis is back. Every other rule fails open
    /// (admits) meanwhile. Default: `["auth", "refresh", "login_email"]`.
    pub rate_limit_fail_closed: Vec<String>,
    /// How often in-process windows drop callers whose counts have expired, in seconds (each
    /// rule by its own window). Default: 60.
    pub rate_limit_sweep_secs: u64,
    /// Addresses or CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`) of reverse proxies whose
    /// `X-Forwarded-For` is believed; the client is the right-most address in it that is not a
    /// trusted proxy. Empty never reads the header. Default: empty.
    pub trusted_proxies: Vec<String>,
    /// Sign-in attempts admitted per e-mail address (normalised) per `login_email_window_secs`,
    /// from any number of addresses; 0 switches the per-account counter off. Default: 20.
    pub login_email_limit: u64,
    /// Window of `login_email_limit`, in seconds. Default: 3,600.
    pub login_email_window_secs: u64,
}

/// Verification mail: how links are made and where mail goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// Folder the embedded mailer writes each outgoing mail to, one `.eml` file per mail (for
    /// development, or a relay that picks them up). Default: `./data/outbox`.
    pub outbox_dir: String,
    /// Public base URL of this service, used to build the links in mails
    /// (`{link_base_url}/api/auth/verify-email?token=...`). Default: `http://127.0.0.1:8080`.
    pub link_base_url: String,
    /// Lifetime of a verification link, in seconds. Default: 86,400 (one day).
    pub verification_ttl_secs: u64,
    /// Shortest time between two verification mails to one account, in seconds. Default: 60.
    pub resend_interval_secs: u64,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            outbox_dir: "./data/outbox".to_owned(),
            link_base_url: "http://127.0.0.1:8080".to_owned(),
            verification_ttl_secs: 24 * 3600,
            resend_interval_secs: 60,
        }
    }
}

/// One OAuth2 / OpenID Connect sign-in provider. `google` and `discord` fill in their endpoints
/// and scopes when those are left empty; any other name needs all three URLs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthProvider {
    /// Path segment and identity namespace: `/api/auth/oauth/{name}/start`. Default: empty.
    pub name: String,
    /// Client id issued by the provider. Default: empty.
    pub client_id: String,
    /// Client secret issued by the provider. Default: empty.
    pub client_secret: Secret,
    /// Where the provider sends the browser back: this service's
    /// `/api/auth/oauth/{name}/callback`. Default: empty.
    pub redirect_uri: String,
    /// Authorization endpoint. Default: the preset for `name`.
    pub authorize_url: String,
    /// Token endpoint. Default: the preset for `name`.
    pub token_url: String,
    /// User-info endpoint (OIDC `userinfo`, Discord `users/@me`). Default: the preset.
    pub userinfo_url: String,
    /// Scopes requested. Default: the preset (`openid email` / `identify email`).
    pub scopes: Vec<String>,
}

impl OAuthProvider {
    /// This provider with empty endpoints and scopes filled from the `google` / `discord`
    /// presets.
    pub fn resolved(&self) -> Self {
        let (authorize, token, userinfo, scopes): (&str, &str, &str, &[&str]) =
            match self.name.as_str() {
                "google" => (
                    "https://accounts.google.com/o/oauth2/v2/auth",
                    "https://oauth2.googleapis.com/token",
                    "https://openidconnect.googleapis.com/v1/userinfo",
                    &["openid", "email"],
                ),
                "discord" => (
                    "https://discord.com/oauth2/authorize",
                    "https://discord.com/api/oauth2/token",
                    "https://discord.com/api/users/@me",
                    &["identify", "email"],
                ),
                _ => ("", "", "", &[]),
            };
        let or = |v: &str, d: &str| {
            if v.is_empty() {
                d.to_owned()
            } else {
                v.to_owned()
            }
        };
        Self {
            authorize_url: or(&self.authorize_url, authorize),
            token_url: or(&self.token_url, token),
            userinfo_url: or(&self.userinfo_url, userinfo),
            scopes: if self.scopes.is_empty() {
                scopes.iter().map(|s| (*s).to_owned()).collect()
            } else {
                self.scopes.clone()
            },
            ..self.clone()
        }
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Config {
    /// Memory per hash in KiB. Default: 19,456 (19 MiB, OWASP).
    pub memory_kib: u32,
    /// Passes over memory. Default: 2 (OWASP).
    pub iterations: u32,
    /// Lanes. Default: 1 (OWASP).
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// One rate-limit rule: requests whose path starts with `prefix` share a sliding window of
/// `window_secs` seconds admitting `limit` requests per user (per client IP before sign-in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// Policy name shown in `RateLimit` headers, e.g. `chat`.
    pub name: String,
    /// Path prefix, e.g. `/api/chat`.
    pub prefix: String,
    /// Requests admitted per window.
    pub limit: u64,
    /// Window length in seconds.
    pub window_secs: u64,
}

/// Stripe billing. Off by default (`disabled = true`): the embedded configuration runs without
/// it, says so at start-up, and the subscription routes answer 503 `billing_disabled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeConfig {
    /// Stripe secret key (`sk_...` or a restricted `rk_...`). Default: empty.
    pub secret_key: Secret,
    /// Runs without billing (everyone stays on their stored tier). Default: true, so the embedded
    /// configuration is ready out of the box.
    pub disabled: bool,
    /// Base URL of Stripe's API (tests point it at a local mock). Default:
    /// `https://api.stripe.com`.
    pub api_base: String,
    /// Signing secrets (`whsec_...`) of the webhook endpoint; a delivery is accepted when any
    /// `v1` signature matches any of them, so a secret can be rolled without downtime.
    /// Default: empty (every delivery is refused).
    pub webhook_secrets: Vec<Secret>,
    /// Stripe price id (`price_...`) of the plus tier's monthly subscription. Default: empty.
    pub price_plus: String,
    /// Stripe price id of the pro tier's monthly subscription. Default: empty.
    pub price_pro: String,
    /// Where Checkout sends the browser after payment. Default: `http://127.0.0.1:8080/?checkout=success`.
    pub success_url: String,
    /// Where Checkout sends the browser when the user gives up. Default:
    /// `http://127.0.0.1:8080/?checkout=cancel`.
    pub cancel_url: String,
    /// Where the billing portal sends the browser back. Default: `http://127.0.0.1:8080/`.
    pub portal_return_url: String,
    /// How long a paid tier is kept after a failed payment (from the failure's event time),
    /// in seconds. Default: 259,200 (3 days).
    pub payment_grace_secs: u64,
    /// Oldest (and furthest in the future) a webhook signature's timestamp may be, in seconds.
    /// Default: 300 (Stripe's own default).
    pub webhook_tolerance_secs: u64,
    /// Seconds between two sweeps that move accounts whose grace or cancelled period ended
    /// back to free (when no later event did). Default: 60.
    pub sweep_secs: u64,
    /// Deadline of one call to Stripe's API, in milliseconds. Default: 10,000.
    pub request_timeout_ms: u64,
}

impl Default for StripeConfig {
    fn default() -> Self {
        Self {
            secret_key: Secret::default(),
            disabled: true,
            api_base: "https://api.stripe.com".to_owned(),
            webhook_secrets: Vec::new(),
            price_plus: String::new(),
            price_pro: String::new(),
            success_url: "http://127.0.0.1:8080/?checkout=success".to_owned(),
            cancel_url: "http://127.0.0.1:8080/?checkout=cancel".to_owned(),
            portal_return_url: "http://127.0.0.1:8080/".to_owned(),
            payment_grace_secs: 3 * 24 * 3600,
            webhook_tolerance_secs: 300,
            sweep_secs: 60,
            request_timeout_ms: 10_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://data/companion.sqlite?mode=rwc".to_owned(),
            database_connect_timeout_secs: 10,
            redis_url: String::new(),
            redis_key_prefix: "cp:".to_owned(),
            issuer: "companion-control-plane".to_owned(),
            audience: "companion".to_owned(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            max_sessions: 3,
            signing_key_rotation_secs: 30 * 24 * 3600,
            signing_key_reload_secs: 60,
            signing_key_secret: Secret::default(),
            service_tokens: Vec::new(),
            argon2: Argon2Config::default(),
            max_body_bytes: 64 * 1024,
            rate_limits: default_rate_limits(),
            tier_api_limits: true,
            llm_url: String::new(),
            stripe: StripeConfig::default(),
            oauth_providers: Vec::new(),
            moderation: crate::moderation::ModerationConfig::default(),
            password_hash_concurrency: 0,
            password_hash_queue_ms: 1_000,
            refresh_reuse_grace_secs: 10,
            session_max_age_secs: 30 * 24 * 3600,
            reauth_window_secs: 300,
            email: EmailConfig::default(),
            redis_connect_timeout_ms: 2_000,
            redis_command_timeout_ms: 500,
            redis_reconnect_max_delay_ms: 5_000,
            rate_limit_deadline_ms: 250,
            rate_limit_fail_closed: ["auth", "refresh", "login_email"]
                .map(str::to_owned)
                .to_vec(),
            rate_limit_sweep_secs: 60,
            trusted_proxies: Vec::new(),
            login_email_limit: 20,
            login_email_window_secs: 3600,
        }
    }
}

fn rule(name: &str, prefix: &str, limit: u64, window_secs: u64) -> RateLimitRule {
    RateLimitRule {
        name: name.to_owned(),
        prefix: prefix.to_owned(),
        limit,
        window_secs,
    }
}

/// The limits the product promises (see the module docs of `ratelimit`).
pub(crate) fn default_rate_limits() -> Vec<RateLimitRule> {
    vec![
        rule("chat", "/api/chat", 100, 3600),
        rule("voice", "/api/voice", 50, 3600),
        // Before `auth`: refreshing must never spend the sign-in budget.
        rule("refresh", "/api/auth/refresh", 60, 900),
        rule("auth", "/api/auth", 10, 900),
        rule("subscription", "/api/subscription", 20, 3600),
    ]
}

impl Config {
    /// Checks values serde cannot: returns the offending key (relative to this section) and
    /// the form it expects.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            return Err(("database_url", "a sqlite:// or postgres:// URL"));
        }
        if self.database_connect_timeout_secs == 0 {
            return Err((
                "database_connect_timeout_secs",
                "a positive number of seconds",
            ));
        }
        if !(self.redis_url.is_empty() || self.redis_url.starts_with("redis")) {
            return Err(("redis_url", "empty, or a redis:// or rediss:// URL"));
        }
        if self.access_token_ttl_secs == 0 || self.access_token_ttl_secs > 24 * 3600 {
            return Err(("access_token_ttl_secs", "seconds between 1 and 86400"));
        }
        if self.refresh_token_ttl_secs < self.access_token_ttl_secs {
            return Err((
                "refresh_token_ttl_secs",
                "seconds, at least access_token_ttl_secs",
            ));
        }
        if self.max_sessions == 0 {
            return Err(("max_sessions", "a positive number"));
        }
        if self.signing_key_rotation_secs < self.access_token_ttl_secs {
            return Err((
                "signing_key_rotation_secs",
                "seconds, at least access_token_ttl_secs",
            ));
        }
        if self.signing_key_reload_secs == 0
            || self.signing_key_reload_secs > self.signing_key_rotation_secs
        {
            return Err((
                "signing_key_reload_secs",
                "seconds, at least 1 and at most signing_key_rotation_secs",
            ));
        }
        if self.service_tokens.iter().any(|t| t.expose().len() < 16) {
            return Err((
                "service_tokens",
                "credentials of at least 16 characters (for example 32 random hex digits)",
            ));
        }
        if self.argon2.memory_kib < 8 * self.argon2.parallelism.max(1)
            || self.argon2.iterations == 0
            || self.argon2.parallelism == 0
        {
            return Err((
                "argon2",
                "memory_kib >= 8 x parallelism, iterations >= 1, parallelism >= 1",
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(("max_body_bytes", "bytes, at least 1024"));
        }
        if self
            .rate_limits
            .iter()
            .any(|r| r.limit == 0 || r.window_secs == 0 || !r.prefix.starts_with('/'))
        {
            return Err((
                "rate_limits",
                "rules with a /path prefix, limit >= 1, window_secs >= 1",
            ));
        }
        for p in self.oauth_providers.iter().map(OAuthProvider::resolved) {
            let url = |u: &str| u.starts_with("http://") || u.starts_with("https://");
            let name_ok = !p.name.is_empty()
                && p.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !name_ok
                || p.client_id.is_empty()
                || !url(&p.redirect_uri)
                || !url(&p.authorize_url)
                || !url(&p.token_url)
                || !url(&p.userinfo_url)
            {
                return Err((
                    "oauth_providers",
                    "providers with a lowercase name, client_id, http(s) redirect_uri and endpoints",
                ));
            }
        }
        if !(self.llm_url.is_empty() || self.llm_url.starts_with("http")) {
            return Err(("llm_url", "empty, or an http:// or https:// URL"));
        }
        if self.password_hash_concurrency > 1024 {
            return Err(("password_hash_concurrency", "0 (CPU cores) to 1024"));
        }
        if self.password_hash_queue_ms == 0 || self.password_hash_queue_ms > 60_000 {
            return Err(("password_hash_queue_ms", "milliseconds between 1 and 60000"));
        }
        if self.refresh_reuse_grace_secs > 300 {
            return Err(("refresh_reuse_grace_secs", "seconds between 0 and 300"));
        }
        if self.session_max_age_secs < self.access_token_ttl_secs {
            return Err((
                "session_max_age_secs",
                "seconds, at least access_token_ttl_secs",
            ));
        }
        if self.reauth_window_secs == 0 || self.reauth_window_secs > 3600 {
            return Err(("reauth_window_secs", "seconds between 1 and 3600"));
        }
        if self.email.outbox_dir.trim().is_empty() {
            return Err(("email.outbox_dir", "a folder path"));
        }
        if !(self.email.link_base_url.starts_with("http://")
            || self.email.link_base_url.starts_with("https://"))
        {
            return Err(("email.link_base_url", "an http:// or https:// URL"));
        }
        if self.email.verification_ttl_secs < 60 {
            return Err(("email.verification_ttl_secs", "seconds, at least 60"));
        }
        let ms = |v: u64| (1..=60_000).contains(&v);
        if !ms(self.redis_connect_timeout_ms) {
            return Err(("redis_connect_timeout_ms", "milliseconds from 1 to 60000"));
        }
        if !ms(self.redis_command_timeout_ms) {
            return Err(("redis_command_timeout_ms", "milliseconds from 1 to 60000"));
        }
        if !(100..=300_000).contains(&self.redis_reconnect_max_delay_ms) {
            return Err((
                "redis_reconnect_max_delay_ms",
                "milliseconds from 100 to 300000",
            ));
        }
        if !ms(self.rate_limit_deadline_ms) {
            return Err(("rate_limit_deadline_ms", "milliseconds from 1 to 60000"));
        }
        if !(1..=3600).contains(&self.rate_limit_sweep_secs) {
            return Err(("rate_limit_sweep_secs", "seconds from 1 to 3600"));
        }
        if crate::ratelimit::client::TrustedProxies::parse(&self.trusted_proxies).is_err() {
            return Err((
                "trusted_proxies",
                "IP addresses or CIDR blocks such as 10.0.0.0/8 or fd00::/8",
            ));
        }
        if self.login_email_window_secs == 0 {
            return Err(("login_email_window_secs", "a positive number of seconds"));
        }
        self.stripe.validate()
    }
}

impl StripeConfig {
    fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        let url = |u: &str| u.starts_with("http://") || u.starts_with("https://");
        if !url(&self.api_base) {
            return Err(("stripe.api_base", "an http:// or https:// URL"));
        }
        if !(url(&self.success_url) && url(&self.cancel_url) && url(&self.portal_return_url)) {
            return Err((
                "stripe.success_url",
                "http(s) URLs in success_url, cancel_url and portal_return_url",
            ));
        }
        if self.payment_grace_secs > 60 * 24 * 3600 {
            return Err((
                "stripe.payment_grace_secs",
                "seconds from 0 to 5184000 (60 days)",
            ));
        }
        if !(1..=3600).contains(&self.webhook_tolerance_secs) {
            return Err(("stripe.webhook_tolerance_secs", "seconds from 1 to 3600"));
        }
        if !(1..=3600).contains(&self.sweep_secs) {
            return Err(("stripe.sweep_secs", "seconds from 1 to 3600"));
        }
        if !(100..=120_000).contains(&self.request_timeout_ms) {
            return Err((
                "stripe.request_timeout_ms",
                "milliseconds from 100 to 120000",
            ));
        }
        if self.webhook_secrets.iter().any(|s| s.expose().len() < 16) {
            return Err((
                "stripe.webhook_secrets",
                "endpoint signing secrets (whsec_...) of at least 16 characters",
            ));
        }
        Ok(())
    }
}
