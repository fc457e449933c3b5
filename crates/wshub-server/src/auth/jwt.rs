//! JWT verification (HS256, RS256, ES256) and minting of HS256 dev tokens.

use super::Identity;
use crate::config::JwtConfig;
use crate::permissions::compile_glob;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Why a token was refused, or a key could not be loaded.
#[derive(Debug, Error)]
pub enum AuthError {
    /// The token is malformed, badly signed, uses an unconfigured algorithm, or lacks `exp`.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token's `exp` has passed (leeway included).
    #[error("token expired")]
    Expired,
    /// No key is configured for tokens at all.
    #[error("this hub accepts no tokens: no auth.jwt key is configured")]
    NoKey,
    /// A configured key file could not be read or parsed.
    #[error("auth.jwt.{key}: {reason}")]
    Key {
        /// The config key naming the file.
        key: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// The claims wshub reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Claims {
    /// The user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// A single role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Several roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Expiry, seconds since the Unix epoch (required).
    pub exp: u64,
    /// Extra topics (globs) this token may subscribe to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
}

/// Verifies tokens against the configured keys.
pub struct Authenticator {
    keys: Vec<(Algorithm, DecodingKey)>,
    hs256_secret: Option<String>,
    leeway: Duration,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<_> = self.keys.iter().map(|(a, _)| a).collect();
        f.debug_struct("Authenticator")
            .field("algorithms", &algs)
            .finish_non_exhaustive()
    }
}

fn read_pem(path: &Path, key: &'static str) -> Result<Vec<u8>, AuthError> {
    std::fs::read(path).map_err(|e| AuthError::Key {
        key,
        reason: format!("cannot read {}: {e}", path.display()),
    })
}

impl Authenticator {
    /// Loads the configured keys.
    pub fn new(config: &JwtConfig) -> Result<Authenticator, AuthError> {
        let mut keys = Vec::new();
        if let Some(secret) = config.hs256_secret.as_deref().filter(|s| !s.is_empty()) {
            keys.push((Algorithm::HS256, DecodingKey::from_secret(secret.as_bytes())));
        }
        if let Some(path) = &config.rs256_public_key {
            let pem = read_pem(path, "rs256_public_key")?;
            let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| AuthError::Key {
                key: "rs256_public_key",
                reason: e.to_string(),
            })?;
            keys.push((Algorithm::RS256, key));
        }
        if let Some(path) = &config.es256_public_key {
            let pem = read_pem(path, "es256_public_key")?;
            let key = DecodingKey::from_ec_pem(&pem).map_err(|e| AuthError::Key {
                key: "es256_public_key",
                reason: e.to_string(),
            })?;
            keys.push((Algorithm::ES256, key));
        }
        Ok(Authenticator {
            keys,
            hs256_secret: config.hs256_secret.clone().filter(|s| !s.is_empty()),
            leeway: config.leeway,
        })
    }

    /// Verifies a token and returns who it names.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if self.keys.is_empty() {
            return Err(AuthError::NoKey);
        }
        // The header is read only to pick the key; an `alg` we hold no key for (or
        // `none`, which the parser refuses) is rejected before any signature work.
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let (alg, key) = self
            .keys
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .ok_or_else(|| AuthError::Invalid(format!("algorithm {:?} is not configured", header.alg)))?;
        let mut validation = Validation::new(*alg);
        validation.leeway = self.leeway.as_secs();
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid(e.to_string()),
        })?;
        identity_from(data.claims)
    }

    /// Mints an HS256 token with the configured secret (`wshub token`).
    pub fn mint(&self, claims: &Claims) -> Result<String, AuthError> {
        let secret = self.hs256_secret.as_deref().ok_or(AuthError::Key {
            key: "hs256_secret",
            reason: "not set: `wshub token` signs with it (set auth.jwt.hs256_secret or WSHUB_AUTH__JWT__HS256_SECRET)"
                .to_owned(),
        })?;
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Whether a token's expiry has passed, leeway included.
    pub fn is_expired(&self, expires_at: u64) -> bool {
        now_secs() > expires_at.saturating_add(self.leeway.as_secs())
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn identity_from(claims: Claims) -> Result<Identity, AuthError> {
    let mut roles = claims.roles.unwrap_or_default();
    if let Some(role) = claims.role {
        roles.insert(0, role);
    }
    roles.retain(|r| !r.is_empty());
    roles.dedup();
    let channels = claims
        .channels
        .unwrap_or_default()
        .iter()
        .map(|c| compile_glob(c).map_err(|e| AuthError::Invalid(format!("bad channels entry {c:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    Ok(Identity {
        user: claims.sub,
        roles,
        expires_at: Some(claims.exp),
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> Authenticator {
        let config = JwtConfig {
            hs256_secret: Some("s3cret".into()),
            ..JwtConfig::default()
        };
        Authenticator::new(&config).expect("hs256 key")
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: Some("u1".into()),
            role: Some("viewer".into()),
            roles: Some(vec!["bot".into()]),
            exp,
            channels: None,
        }
    }

    #[test]
    fn round_trip_and_roles_union() {
        let auth = authenticator();
        let token = auth.mint(&claims(now_secs() + 60)).expect("mint");
        let id = auth.verify(&token).expect("valid");
        assert_eq!(id.user.as_deref(), Some("u1"));
        assert_eq!(id.roles, vec!["viewer", "bot"]);
    }

    #[test]
    fn expired_and_tampered_tokens_fail() {
        let auth = authenticator();
        let token = auth.mint(&claims(now_secs() - 3600)).expect("mint");
        assert!(matches!(auth.verify(&token), Err(AuthError::Expired)));
        let other = Authenticator::new(&JwtConfig {
            hs256_secret: Some("other".into()),
            ..JwtConfig::default()
        })
        .expect("key");
        let token = other.mint(&claims(now_secs() + 60)).expect("mint");
        assert!(matches!(auth.verify(&token), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(format!(r#"{{"sub":"u","role":"admin","exp":{}}}"#, now_secs() + 60).as_bytes());
        let token = format!("{header}.{body}.");
        assert!(matches!(authenticator().verify(&token), Err(AuthError::Invalid(_))));
    }
}
