//! PLACEHOLDER until the registry client lands (being written in parallel).

#[derive(Debug, thiserror::Error)]
#[error("schema registry at {url}: {reason}")]
pub struct RegistryError {
    pub url: String,
    pub reason: String,
}

pub struct SchemaRegistry {
    base: String,
}

impl SchemaRegistry {
    pub fn new(base_url: &str) -> Result<Self, RegistryError> {
        Ok(SchemaRegistry { base: base_url.to_string() })
    }

    pub fn register(&self, _subject: &str, _schema_json: &str) -> Result<u32, RegistryError> {
        Err(RegistryError { url: self.base.clone(), reason: "not implemented".into() })
    }

    pub fn schema(&self, _id: u32) -> Result<String, RegistryError> {
        Err(RegistryError { url: self.base.clone(), reason: "not implemented".into() })
    }
}
