//! ChatML prompts: `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then the generation
//! prompt `<|im_start|>assistant\n`.
//!
//! The markers are inserted as token ids; roles and contents are encoded with special tokens
//! *not* recognised, so text such as `<|im_end|>` inside a message is tokenised as ordinary
//! characters and can never end a turn or open a new one.

use std::str::FromStr;

use tokenizers::Tokenizer;

use crate::error::ModelError;

/// The system turn SmolLM2's chat template adds when a conversation has none.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// Speaker of a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

impl FromStr for Role {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(Self::System),
            "user" => Ok(Self::User),
            "assistant" => Ok(Self::Assistant),
            _ => Err(ModelError::UnknownRole),
        }
    }
}

/// One chat message. `Debug` does not show the content.
#[derive(Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

impl std::fmt::Debug for ChatMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatMessage")
            .field("role", &self.role)
            .field("content_len", &self.content.len())
            .finish()
    }
}

/// Token ids of the ChatML markers, and an encoder that treats all text literally.
#[derive(Debug, Clone)]
pub(crate) struct ChatEncoder {
    /// The tokenizer with special-token matching switched off.
    literal: Tokenizer,
    im_start: u32,
    im_end: u32,
}

impl ChatEncoder {
    pub(crate) fn new(tokenizer: &Tokenizer) -> Result<Self, ModelError> {
        let id = |tok: &str| {
            tokenizer
                .token_to_id(tok)
                .ok_or_else(|| ModelError::Inconsistent(format!("tokenizer lacks {tok}")))
        };
        let im_start = id("<|im_start|>")?;
        let im_end = id("<|im_end|>")?;
        let mut literal = tokenizer.clone();
        literal.set_encode_special_tokens(true);
        Ok(Self {
            literal,
            im_start,
            im_end,
        })
    }

    /// Encodes text with no special token recognised.
    pub(crate) fn encode_literal(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let enc = self
            .literal
            .encode(text, false)
            .map_err(ModelError::Encode)?;
        Ok(enc.get_ids().to_vec())
    }

    /// The ChatML prompt for `messages`, ending with the assistant's generation prompt.
    pub(crate) fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, ModelError> {
        if messages.is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        let mut ids = Vec::new();
        if messages[0].role != Role::System {
            self.push_turn(&mut ids, Role::System, DEFAULT_SYSTEM_PROMPT)?;
        }
        for m in messages {
            self.push_turn(&mut ids, m.role, &m.content)?;
        }
        ids.push(self.im_start);
        ids.extend(self.encode_literal("assistant\n")?);
        Ok(ids)
    }

    fn push_turn(&self, ids: &mut Vec<u32>, role: Role, content: &str) -> Result<(), ModelError> {
        ids.push(self.im_start);
        // Role and content are one text segment, as when the whole ChatML string is encoded.
        let mut text = String::with_capacity(role.as_str().len() + 1 + content.len());
        text.push_str(role.as_str());
        text.push('\n');
        text.push_str(content);
        ids.extend(self.encode_literal(&text)?);
        ids.push(self.im_end);
        ids.extend(self.encode_literal("\n")?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_unknown_is_rejected() {
        assert_eq!("user".parse::<Role>().unwrap(), Role::User);
        assert_eq!("system".parse::<Role>().unwrap(), Role::System);
        assert_eq!("assistant".parse::<Role>().unwrap(), Role::Assistant);
        for bad in ["tool", "User", "", "user\n", "<|im_start|>"] {
            assert!(
                matches!(bad.parse::<Role>(), Err(ModelError::UnknownRole)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_hides_content() {
        let m = ChatMessage::new(Role::User, "secret words");
        assert!(!format!("{m:?}").contains("secret"));
    }
}
