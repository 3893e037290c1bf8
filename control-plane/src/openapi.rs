//! The OpenAPI document, generated from the handlers' annotations and served at `/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(title = "Companion control plane", description = "Accounts, tokens, quotas, conversations."),
    paths(
        api::auth::signup, api::auth::login, api::auth::refresh, api::auth::logout,
        api::auth::change_password, api::auth::verify_email_page, api::auth::verify_email,
        api::auth::resend_verification, api::oauth::start, api::oauth::callback, api::keys::jwks, api::usage::me, api::usage::usage,
        api::quota::reserve, api::quota::settle,
        api::conversations::list, api::conversations::create,
        api::conversations::list_messages, api::conversations::post_message,
        api::companions::list, api::companions::create, api::companions::get_one,
        api::companions::update, api::companions::delete,
        api::chat::open_turn, api::chat::record_reply, api::chat::get_turn,
        api::subscription::current, api::subscription::create_checkout,
        api::subscription::portal, api::subscription::cancel, api::subscription::history,
        api::subscription::webhook,
    ),
    components(schemas(api::error::ErrorBody, api::error::ErrorDetail)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        // The data plane's own credential, required next to the user's token on the routes
        // that record usage (see `api::data_plane`).
        components.add_security_scheme(
            "service",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                crate::api::data_plane::SERVICE_TOKEN_HEADER,
            ))),
        );
    }
}

/// The OpenAPI 3.1 document for this API.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub(crate) async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
