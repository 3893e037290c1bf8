//! `GET /v1/models` and `GET /v1/models/{model}`: the models behind the provider chains, in
//! OpenAI's shape.
//!
//! The chat, speech and transcription endpoints accept any `model` name (the configured chain
//! answers whatever it is called), so the list cannot be "the names you may send". It is what
//! really answers: each installed provider's model, chat chain first, then speech, then
//! transcription, each in failover order. `owned_by` names the provider that runs it.

use axum::{
    Json,
    extract::{Path, State},
    http::HeaderMap,
};
use pipeline::{ServedModel, session::Providers};
use serde_json::{Value, json};

use super::{OpenAi, error::OpenAiError};

/// The listed models, fixed when the routes are built: the chains do not change while the
/// process runs.
#[derive(Debug)]
pub(crate) struct Catalogue {
    models: Vec<ServedModel>,
    /// OpenAI's `created` (Unix seconds): when this gateway built its routes, since the vendors
    /// do not say when their models were made.
    created: u64,
}

impl Catalogue {
    pub(crate) fn new(providers: Option<&Providers>, created: u64) -> Self {
        let models = providers.map_or_else(Vec::new, |p| {
            let mut all = p.llm.models();
            all.extend(p.tts.models());
            all.extend(p.stt.models());
            all
        });
        Self::from_models(models, created)
    }

    /// Keeps the first of equal ids (two chains may run the same model), so `retrieve` is
    /// unambiguous.
    fn from_models(models: impl IntoIterator<Item = ServedModel>, created: u64) -> Self {
        let mut unique: Vec<ServedModel> = Vec::new();
        for model in models {
            if !unique.iter().any(|m| m.model == model.model) {
                unique.push(model);
            }
        }
        Self {
            models: unique,
            created,
        }
    }

    fn object(&self, model: &ServedModel) -> Value {
        json!({
            "id": model.model,
            "object": "model",
            "created": self.created,
            "owned_by": model.provider,
        })
    }

    fn list(&self) -> Value {
        let data: Vec<Value> = self.models.iter().map(|m| self.object(m)).collect();
        json!({ "object": "list", "data": data })
    }

    fn get(&self, id: &str) -> Option<Value> {
        self.models
            .iter()
            .find(|m| m.model == id)
            .map(|m| self.object(m))
    }
}

/// `GET /v1/models`.
pub(crate) async fn list(
    State(api): State<OpenAi>,
    headers: HeaderMap,
) -> Result<Json<Value>, OpenAiError> {
    api.authenticate(&headers)?;
    api.providers()?;
    Ok(Json(api.models.list()))
}

/// `GET /v1/models/{model}`; the id may contain `/` (as some vendors' model names do), which
/// the SDKs put into the path unescaped.
pub(crate) async fn retrieve(
    State(api): State<OpenAi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    api.authenticate(&headers)?;
    api.providers()?;
    api.models
        .get(&id)
        .map(Json)
        .ok_or_else(|| OpenAiError::model_not_found(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_has_openais_shape_and_one_entry_per_id() {
        let catalogue = Catalogue::from_models(
            [
                ServedModel::new("gpt-4o-mini", "openai"),
                ServedModel::new("vendor/big-model", "groq"),
                ServedModel::new("gpt-4o-mini", "local"),
            ],
            1_700_000_000,
        );
        assert_eq!(
            catalogue.list(),
            json!({"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 1_700_000_000, "owned_by": "openai"},
                {"id": "vendor/big-model", "object": "model", "created": 1_700_000_000, "owned_by": "groq"},
            ]})
        );
        assert_eq!(
            catalogue.get("vendor/big-model").unwrap()["owned_by"],
            "groq"
        );
        assert_eq!(catalogue.get("gpt-4o"), None);
    }
}
