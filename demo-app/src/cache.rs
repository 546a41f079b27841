//! The cache that read-mostly views are mirrored into: Redis when `--redis-url` names one,
//! an in-process map otherwise (the one-command demo installs nothing).
//!
//! The inventory monitor writes every stock level here (`<prefix>stock:<product id>`, JSON),
//! so readers that are not part of the streams app (the inventory API, the dashboard, other
//! processes with Redis) read levels without asking the app's stores.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use redis::AsyncCommands;

/// Why the cache failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Redis refused or failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

#[derive(Clone)]
enum Backend {
    Redis(redis::aio::ConnectionManager),
    Memory(Arc<Mutex<BTreeMap<String, String>>>),
}

/// A string key-value cache; cheap to clone.
#[derive(Clone)]
pub struct Cache {
    backend: Backend,
    prefix: String,
}

impl Cache {
    /// An in-process cache, keys under `prefix`.
    pub fn in_memory(prefix: &str) -> Cache {
        Cache {
            backend: Backend::Memory(Arc::default()),
            prefix: prefix.to_owned(),
        }
    }

    /// Redis at `url` (`redis://127.0.0.1:6379`), keys under `prefix` (`shop:`).
    pub async fn redis(url: &str, prefix: &str) -> Result<Cache, CacheError> {
        let client = redis::Client::open(url)?;
        let connection = client.get_connection_manager().await?;
        Ok(Cache {
            backend: Backend::Redis(connection),
            prefix: prefix.to_owned(),
        })
    }

    /// `Redis` or `in-process`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Redis(_) => "Redis",
            Backend::Memory(_) => "in-process",
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Sets `key` to `value`.
    pub async fn set(&self, key: &str, value: &str) -> Result<(), CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(connection) => {
                let mut connection = connection.clone();
                connection.set::<_, _, ()>(key, value).await?;
            }
            Backend::Memory(map) => {
                map.lock()
                    .expect("cache lock")
                    .insert(key, value.to_owned());
            }
        }
        Ok(())
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(connection) => {
                let mut connection = connection.clone();
                Ok(connection.get(key).await?)
            }
            Backend::Memory(map) => Ok(map.lock().expect("cache lock").get(&key).cloned()),
        }
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(connection) => {
                let mut connection = connection.clone();
                connection.del::<_, ()>(key).await?;
            }
            Backend::Memory(map) => {
                map.lock().expect("cache lock").remove(&key);
            }
        }
        Ok(())
    }

    /// Every key (without the prefix) that starts with `prefix`, with its value, sorted.
    pub async fn scan(&self, prefix: &str) -> Result<Vec<(String, String)>, CacheError> {
        let full = self.key(prefix);
        match &self.backend {
            Backend::Redis(connection) => {
                let mut connection = connection.clone();
                let mut keys: Vec<String> = {
                    let mut iter = connection
                        .scan_match::<_, String>(format!("{}*", redis_escape(&full)))
                        .await?;
                    let mut keys = Vec::new();
                    while let Some(key) = futures::StreamExt::next(&mut iter).await {
                        keys.push(key?);
                    }
                    keys
                };
                keys.sort();
                let mut out = Vec::with_capacity(keys.len());
                for key in keys {
                    let value: Option<String> = connection.get(&key).await?;
                    if let Some(value) = value {
                        out.push((key[self.prefix.len()..].to_owned(), value));
                    }
                }
                Ok(out)
            }
            Backend::Memory(map) => Ok(map
                .lock()
                .expect("cache lock")
                .range(full.clone()..)
                .take_while(|(k, _)| k.starts_with(&full))
                .map(|(k, v)| (k[self.prefix.len()..].to_owned(), v.clone()))
                .collect()),
        }
    }
}

/// Escapes Redis glob characters.
fn redis_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_process_cache_sets_gets_scans_and_deletes() {
        let cache = Cache::in_memory("shop:");
        cache.set("stock:SKU-2", "2").await.unwrap();
        cache.set("stock:SKU-1", "1").await.unwrap();
        cache.set("other", "x").await.unwrap();
        assert_eq!(
            cache.get("stock:SKU-1").await.unwrap().as_deref(),
            Some("1")
        );
        assert_eq!(
            cache.scan("stock:").await.unwrap(),
            vec![
                ("stock:SKU-1".to_owned(), "1".to_owned()),
                ("stock:SKU-2".to_owned(), "2".to_owned())
            ]
        );
        cache.delete("stock:SKU-1").await.unwrap();
        assert_eq!(cache.get("stock:SKU-1").await.unwrap(), None);
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(redis_escape("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }
}
