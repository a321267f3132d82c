//! `GET /v1/models` and `GET /v1/models/{model}` bodies.
//!
//! Source: OpenAI API reference, "Models > The model object".

use serde::Serialize;

/// A model object: `{"id","object":"model","created","owned_by"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Model {
    /// The name clients use in requests.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds: Ollama's `modified_at`.
    pub created: i64,
    /// The model's namespace, `library` for Ollama's own.
    pub owned_by: String,
}

impl Model {
    /// A model object.
    pub fn new(id: impl Into<String>, created: i64, owned_by: &str) -> Self {
        Self {
            id: id.into(),
            object: "model",
            created,
            owned_by: owned_by.to_owned(),
        }
    }
}

/// `{"object":"list","data":[…]}`; `data` is `[]` when there are no models.
#[derive(Debug, Serialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    /// The models.
    pub data: Vec<Model>,
}
