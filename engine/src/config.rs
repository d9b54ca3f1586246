//! `config.json` of a model bundle: the Hugging Face Llama fields plus a `confidant` section.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// The model's shape and special tokens, as written by `confidant model prepare`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architectures: Vec<String>,
    pub model_type: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f32,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
    pub confidant: BundleInfo,
}

/// Confidant's own fields: what the bundle holds and how to stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleInfo {
    /// Model name reported by the API, e.g. `SmolLM2-135M-Instruct`.
    pub model_name: String,
    /// Weight file in the bundle (GGUF).
    pub weights_file: String,
    /// `q8_0` or `q4_1`: the quantisation of the matrix weights.
    pub weights_format: String,
    /// Generation ends when the model emits one of these (end of turn, start of a new turn,
    /// end of text).
    pub stop_token_ids: Vec<u32>,
    /// Control tokens of the vocabulary (ChatML markers and the like), never produced from
    /// user-supplied text.
    pub control_token_ids: Vec<u32>,
}

impl ModelConfig {
    /// Parses `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ModelError> {
        let config: Self = serde_json::from_slice(bytes).map_err(ModelError::Config)?;
        if config.confidant.stop_token_ids.is_empty() {
            return Err(ModelError::Inconsistent("config has no stop tokens".into()));
        }
        if config.num_attention_heads == 0
            || config.num_key_value_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(ModelError::Inconsistent(
                "config has an invalid head layout".into(),
            ));
        }
        Ok(config)
    }
}
